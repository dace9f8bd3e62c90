using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Cloud.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Cloud.Controller.Tests.Support;

/// <summary>
/// A migrated database and any number of scheduler replicas on it, each with its own view, as
/// separate controller processes would have. Registered the way the controller registers them.
/// </summary>
internal sealed class SchedulerReplicas : IAsyncDisposable
{
    public const string Project = "project-a";

    private readonly List<ServiceProvider> _providers = [];

    private SchedulerReplicas(string connectionString)
    {
        ConnectionString = connectionString;
        DataSource = NpgsqlDataSource.Create(connectionString);
        Ledger = new CapacityLedger(DataSource, TimeProvider.System);
    }

    public string ConnectionString { get; }

    public NpgsqlDataSource DataSource { get; }

    public CapacityLedger Ledger { get; }

    public static async Task<SchedulerReplicas> CreateAsync()
        => new(await PostgresFixture.Shared.CreateMigratedDatabaseAsync());

    /// <summary>
    /// A replica with its claim loop running (group commit), as the controller's host runs it;
    /// <paramref name="claimLoop"/> false places every request alone; <paramref name="claimLoops"/>
    /// groups may be in flight at once.
    /// </summary>
    public Scheduler NewReplica(string policy = "spread", int maxFeasible = 0, bool claimLoop = true, TimeSpan? refreshInterval = null, int claimLoops = 2)
    {
        var refresh = refreshInterval ?? TimeSpan.FromSeconds(2);
        var fullReload = refresh > TimeSpan.FromMinutes(10) ? refresh : TimeSpan.FromMinutes(10);
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Scheduler:Policy"] = policy,
            ["Scheduler:MaxFeasibleNodes"] = maxFeasible.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Scheduler:MaxClaimAttempts"] = "50",
            ["Scheduler:ClaimLoops"] = claimLoops.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Scheduler:RefreshInterval"] = refresh.ToString("c", System.Globalization.CultureInfo.InvariantCulture),
            ["Scheduler:FullReloadInterval"] = fullReload.ToString("c", System.Globalization.CultureInfo.InvariantCulture),
        }).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddLogging();
        services.AddLedgerDatabase(ConnectionString);
        services.AddScheduling();
        var provider = services.BuildServiceProvider();
        _providers.Add(provider);
        if (claimLoop)
        {
            // Started here rather than by a host; disposing the provider stops it.
            provider.GetRequiredService<ClaimLoop>().StartAsync(CancellationToken.None).GetAwaiter().GetResult();
        }
        return provider.GetRequiredService<Scheduler>();
    }

    /// <summary>A replica that also listens for node changes, as the controller's host runs it, with its listener.</summary>
    public async Task<(Scheduler Scheduler, NodeChangeListener Listener)> NewListeningReplicaAsync(TimeSpan refreshInterval)
    {
        var scheduler = NewReplica(refreshInterval: refreshInterval);
        var listener = _providers[^1].GetRequiredService<NodeChangeListener>();
        // Started here rather than by a host; disposing the provider stops it.
        await listener.StartAsync(CancellationToken.None);
        return (scheduler, listener);
    }

    /// <summary>Stops every replica's claim loop, as a host stopping does.</summary>
    public async Task StopClaimLoopsAsync()
    {
        foreach (var provider in _providers)
        {
            await provider.GetRequiredService<ClaimLoop>().StopAsync(CancellationToken.None);
        }
    }

    /// <summary>The decision janitor of a replica, on the real clock.</summary>
    public DecisionJanitor Janitor()
    {
        NewReplica();
        return _providers[^1].GetRequiredService<DecisionJanitor>();
    }

    public Task<Guid> AddNodeAsync(string name, long vcpus = 4, long memoryMb = 8192, string zone = "az1", string[]? traits = null)
        => Ledger.UpsertNodeAsync(new NodeRegistration(name, "http://127.0.0.2:7070", "fake", "none", zone, traits ?? [],
            new Dictionary<string, ResourceInventory>
            {
                ["VCPU"] = new(vcpus, 0, 1.0, 1, vcpus, 1),
                ["MEMORY_MB"] = new(memoryMb, 0, 1.0, 1, memoryMb, 1),
            }), CancellationToken.None);

    public async Task<Guid> AddGroupAsync(string name, string policy, int maxMembers = 100)
    {
        var id = Guid.NewGuid();
        await ExecuteAsync("INSERT INTO server_groups (id, project_id, name, policy, max_members, created_at) VALUES ($1, $2, $3, $4, $5, now())",
            id, Project, name, policy, maxMembers);
        return id;
    }

    /// <summary>Inserts the VM rows of placed VMs in the claim's transaction, as the controller does.</summary>
    public static async Task InsertVmsAsync(NpgsqlTransaction transaction, IEnumerable<(Guid Vm, Guid Node)> placed)
    {
        var list = placed.ToList();
        await using var command = new NpgsqlCommand("""
            INSERT INTO vms (id, project_id, name, flavor_name, state, node_id, vcpus, memory_mb, disk_gb, labels, created_at, updated_at)
            SELECT v.id, $3, 'vm-' || left(v.id::text, 8), 'm1.tiny', 'RUNNING', v.node_id, 1, 512, 0, '{}', now(), now()
              FROM unnest($1::uuid[], $2::uuid[]) AS v(id, node_id)
            """, transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = list.Select(p => p.Vm).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = list.Select(p => p.Node).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = Project });
        await command.ExecuteNonQueryAsync();
    }

    public static BatchItem Item(int vcpus = 1, long memoryMb = 512, PlacementConstraints? constraints = null)
        => new(Guid.NewGuid(), Project, new PlacementRequest(new ResourceRequest(vcpus, memoryMb, 0), constraints));

    public async Task<int> ExecuteAsync(string sql, params object[] values)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }
        return await command.ExecuteNonQueryAsync();
    }

    public async Task<long> ScalarAsync(string sql, params object[] values)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var provider in _providers)
        {
            await provider.DisposeAsync();
        }
        await DataSource.DisposeAsync();
    }
}
