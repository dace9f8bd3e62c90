using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Cloud.Contracts.Agent.V1;
using Cloud.Contracts.Node.V1;
using Cloud.Contracts.Trust;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Hosting;
using Cloud.Controller.Scheduling;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cloud.Testing;

namespace Cloud.Scheduler.Benchmarks;

/// <summary>
/// A controller replica in this process, as the controller's own host builds it, TLS on: every
/// replica of the process loads the same CA (the tests' CA, <see cref="TestTrust"/>) from one
/// Trust:Directory, as replicas share one in production.
/// </summary>
internal sealed class ControllerReplica : IAsyncDisposable
{
    private const string OperatorToken = "bench-operator-token";

    private readonly WebApplication _app;

    private static readonly Lazy<string> TrustDirectory = new(() =>
    {
        var folder = TestTrust.NewFolder("cloud-bench-trust");
        TestTrust.Shared.WriteCaFolder(folder);
        // The CA's key is the process's own: nothing of it is left behind.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(folder, recursive: true);
        return folder;
    });

    private ControllerReplica(WebApplication app, Uri grpcUrl, Uri nodeUrl)
    {
        _app = app;
        GrpcUrl = grpcUrl;
        NodeUrl = nodeUrl;
    }

    public Uri GrpcUrl { get; }

    /// <summary>The node port (mutual TLS), where nodes register.</summary>
    public Uri NodeUrl { get; }

    public Controller.Scheduling.Scheduler Scheduler => _app.Services.GetRequiredService<Controller.Scheduling.Scheduler>();

    public Controller.Capacity.CapacityService Capacity => _app.Services.GetRequiredService<Controller.Capacity.CapacityService>();

    public static async Task<ControllerReplica> StartAsync(string connectionString, string policy, int maxFeasibleNodes)
    {
        var rest = FreePort();
        var grpc = FreePort();
        var node = FreePort();
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Controller:RestListen"] = $"127.0.0.1:{rest}",
            ["Controller:GrpcListen"] = $"127.0.0.1:{grpc}",
            ["Controller:NodeListen"] = $"127.0.0.1:{node}",
            ["Trust:Directory"] = TrustDirectory.Value,
            ["Auth:OperatorTokenSha256:0"] = TokenAuthenticator.Sha256Hex(OperatorToken),
            // Hollow nodes register but do not heartbeat during a run: keep them UP.
            ["Nodes:HeartbeatInterval"] = "00:01:00",
            ["Nodes:DownAfter"] = "01:00:00",
            ["Scheduler:Policy"] = policy,
            ["Scheduler:MaxFeasibleNodes"] = maxFeasibleNodes.ToString(CultureInfo.InvariantCulture),
            ["Scheduler:MaxClaimAttempts"] = "50",
        });
        builder.Logging.ClearProviders();
        builder.AddController(connectionString);
        var app = builder.Build();
        app.MapController();
        await app.StartAsync();
        return new ControllerReplica(app, new Uri($"https://127.0.0.1:{grpc}"), new Uri($"https://127.0.0.1:{node}"));
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>
/// Hollow nodes, as kubemark has them: no hypervisor behind them, only the agent's side of the
/// node registry, registering their inventory over real gRPC with the controller's node port,
/// each with its own node certificate (mutual TLS, one connection per node, as agents do).
/// </summary>
internal static class HollowNodes
{
    private static readonly Lock Issuing = new();
    private static readonly List<X509Certificate2> Issued = [];
    private static readonly ECDsa SharedKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    /// <summary>
    /// Issues the certificates of hollow nodes 0..count-1 (kept for the process: every cloud
    /// names its nodes alike), so that a timed registration does not time the CA. One key for
    /// all of them: hollow nodes prove nothing to each other.
    /// </summary>
    public static IReadOnlyList<X509Certificate2> Certificates(int count)
    {
        lock (Issuing)
        {
            var publicKey = new CertificateRequest("CN=hollow", SharedKey, HashAlgorithmName.SHA256).PublicKey;
            for (var i = Issued.Count; i < count; i++)
            {
                var name = Name(i);
                using var certificate = TestTrust.Shared.Authority.Issue(publicKey, CloudIdentity.NodeSubject(name), CloudIdentity.NodeUri(name),
                    [], [], DateTimeOffset.UtcNow, TimeSpan.FromDays(1));
                Issued.Add(certificate.CopyWithPrivateKey(SharedKey));
            }
            return Issued;
        }
    }

    public static async Task RegisterAsync(Uri controllerNodePort, int count, long vcpus, double cpuRatio, long memoryMb, CancellationToken cancellationToken)
    {
        var certificates = Certificates(count);
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 64, CancellationToken = cancellationToken }, async (i, ct) =>
        {
            var node = new NodeInfo
            {
                NodeName = Name(i),
                Hypervisor = "fake",
                Accelerator = Accelerator.Fake,
                AvailabilityZone = $"zone-{i % 3}",
            };
            node.Inventories.Add(new Inventory { ResourceClass = "VCPU", Total = vcpus, AllocationRatio = cpuRatio, MinUnit = 1, MaxUnit = vcpus, StepSize = 1 });
            node.Inventories.Add(new Inventory { ResourceClass = "MEMORY_MB", Total = memoryMb, AllocationRatio = 1.0, MinUnit = 1, MaxUnit = memoryMb, StepSize = 1 });
            using var channel = TestTrust.Shared.Channel(controllerNodePort, certificates[i]);
            var registry = new NodeRegistry.NodeRegistryClient(channel);
            // Loopback addresses only; nothing listens there, since placement never calls the agent.
            await registry.RegisterAsync(new RegisterRequest { Node = node, AgentAddress = $"https://127.0.{1 + (i / 250 % 250)}.{2 + (i % 250)}:7070" },
                new CallOptions(deadline: DateTime.UtcNow.AddSeconds(60), cancellationToken: ct));
        });
    }

    private static string Name(int i) => $"hollow-{i:D5}";
}

/// <summary>A VM size of the trace.</summary>
internal sealed record VmSize(string Name, int Vcpus, long MemoryMb, double Share);

/// <summary>
/// A mixed-size trace, small to large, shaped like public clouds' size mixes: most VMs are
/// small, a few are large. Seeded, so that every run places the same VMs.
/// </summary>
internal sealed class VmTrace(int seed)
{
    public static readonly VmSize[] Sizes =
    [
        new("1x2", 1, 2048, 0.30), new("2x4", 2, 4096, 0.25), new("2x8", 2, 8192, 0.15), new("4x8", 4, 8192, 0.10),
        new("4x16", 4, 16384, 0.10), new("8x32", 8, 32768, 0.06), new("16x64", 16, 65536, 0.03), new("32x128", 32, 131072, 0.01),
    ];

    private readonly Random _random = new(seed);

    public Random Random => _random;

    public VmSize Next()
    {
        var roll = _random.NextDouble();
        foreach (var size in Sizes)
        {
            if ((roll -= size.Share) < 0)
            {
                return size;
            }
        }
        return Sizes[^1];
    }
}

/// <summary>Database helpers of the simulator: VM rows, as the API writes them, in the claim's transaction.</summary>
internal static class SimulatorSql
{
    public const string Project = "bench";

    private const string InsertVmsSql = """
        INSERT INTO vms (id, project_id, name, flavor_name, state, node_id, vcpus, memory_mb, disk_gb, labels, created_at, updated_at)
        SELECT v.id, $1, 'vm-' || left(v.id::text, 8), v.flavor, 'RUNNING', v.node_id, v.vcpus, v.memory_mb, 0, '{}', now(), now()
          FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::int[], $6::bigint[]) AS v(id, node_id, flavor, vcpus, memory_mb)
        """;

    /// <summary>The VM rows as one statement, to send in the claim's round trip.</summary>
    public static NpgsqlBatchCommand InsertVmsCommand(IReadOnlyList<(Guid Vm, Guid Node, VmSize Size)> vms)
    {
        var command = new NpgsqlBatchCommand(InsertVmsSql);
        command.Parameters.Add(new NpgsqlParameter { Value = Project });
        command.Parameters.Add(new NpgsqlParameter { Value = vms.Select(v => v.Vm).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = vms.Select(v => v.Node).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = vms.Select(v => v.Size.Name).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = vms.Select(v => v.Size.Vcpus).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = vms.Select(v => v.Size.MemoryMb).ToArray() });
        return command;
    }

    /// <summary>VMs depart: their claims are released and their rows marked deleted, in one transaction.</summary>
    public static async Task DepartAsync(NpgsqlDataSource dataSource, Controller.Scheduling.Scheduler scheduler, IReadOnlyList<Guid> vms, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        foreach (var vm in vms)
        {
            await scheduler.ReleaseAsync(vm, null, transaction, cancellationToken);
        }
        await using (var command = new NpgsqlCommand("UPDATE vms SET state = 'DELETED', node_id = NULL WHERE id = ANY($1)", connection, transaction))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = vms.ToArray() });
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        await transaction.CommitAsync(cancellationToken);
    }

    public static BatchItem Item(VmSize size)
        => new(Guid.CreateVersion7(), Project, new PlacementRequest(new ResourceRequest(size.Vcpus, size.MemoryMb, 0)));

    public static async Task<long> ScalarAsync(NpgsqlDataSource dataSource, string sql, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(sql);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Leaves the cluster with WAL files ready to reuse, as a cluster that has run a while has
    /// them: each checkpoint renames the files it no longer needs to the next ones (up to
    /// min_wal_size, 80 MB). A cluster created for the run instead creates and zero-fills each
    /// 16 MB file while a commit waits on it, which stalled every commit for about 20 ms once
    /// per 16 MB of WAL (once per 11 s at 500 placements/s).
    /// </summary>
    public static async Task RecycleWalFilesAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        // Each switch needs WAL since the one before: a transaction id is a commit record.
        for (var i = 0; i < 6; i++)
        {
            await ScalarAsync(dataSource, "SELECT pg_current_xact_id()::text::bigint", cancellationToken);
            await ScalarAsync(dataSource, "SELECT count(*) FROM pg_switch_wal()", cancellationToken);
        }
        await using var checkpoint = dataSource.CreateCommand("CHECKPOINT");
        await checkpoint.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>VMs of a trace placed the way the API places them: claim, VM row and decision in one transaction.</summary>
internal static class TracePlacement
{
    /// <summary>The next <paramref name="count"/> VMs of the trace, as one batch with a minimum of one.</summary>
    public static Task<BatchResult> PlaceBatchAsync(Controller.Scheduling.Scheduler scheduler, VmTrace trace, int count, CancellationToken cancellationToken)
    {
        var sizes = new Dictionary<Guid, VmSize>(count);
        var items = Enumerable.Range(0, count).Select(_ =>
        {
            var size = trace.Next();
            var item = SimulatorSql.Item(size);
            sizes[item.ConsumerId] = size;
            return item;
        }).ToList();
        return scheduler.PlaceBatchAsync(items, minimum: 1,
            placed => SimulatorSql.InsertVmsCommand([.. placed.Select(p => (p.Item.ConsumerId, p.Node.NodeId, sizes[p.Item.ConsumerId]))]), null,
            cancellationToken);
    }

    /// <summary>One VM; its id when it was placed. The VM row goes in the claim's round trip.</summary>
    public static async Task<Guid?> PlaceOneAsync(Controller.Scheduling.Scheduler scheduler, VmSize size, CancellationToken cancellationToken)
    {
        var vm = Guid.CreateVersion7();
        var result = await scheduler.PlaceAsync(vm, SimulatorSql.Project, new PlacementRequest(new ResourceRequest(size.Vcpus, size.MemoryMb, 0)),
            node => SimulatorSql.InsertVmsCommand([(vm, node.NodeId, size)]), null, cancellationToken);
        return result.Placed ? vm : null;
    }
}
