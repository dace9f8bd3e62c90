using System.Globalization;
using Cloud.Testing;
using Npgsql;

namespace Cloud.Controller.Data.Tests.Support;

/// <summary>A migrated database of its own, with a ledger on it and a few SQL helpers.</summary>
internal sealed class LedgerDatabase : IAsyncDisposable
{
    public const string Project = "project-a";

    private LedgerDatabase(string connectionString)
    {
        ConnectionString = connectionString;
        DataSource = NpgsqlDataSource.Create(connectionString);
        Ledger = new CapacityLedger(DataSource, Time);
    }

    public string ConnectionString { get; }

    public NpgsqlDataSource DataSource { get; }

    public ManualTimeProvider Time { get; } = new();

    public CapacityLedger Ledger { get; }

    public static async Task<LedgerDatabase> CreateAsync()
        => new(await PostgresFixture.Shared.CreateMigratedDatabaseAsync());

    /// <summary>Registers a node with VCPU, MEMORY_MB and DISK_GB; returns its id.</summary>
    public Task<Guid> AddNodeAsync(string name, long vcpus = 8, long memoryMb = 16384, long diskGb = 100,
        double cpuRatio = 1.0, long reservedVcpus = 0, long reservedMemoryMb = 0, long memoryStep = 1)
        => Ledger.UpsertNodeAsync(Registration(name, new Dictionary<string, ResourceInventory>
        {
            ["VCPU"] = new(vcpus, reservedVcpus, cpuRatio, 1, vcpus, 1),
            ["MEMORY_MB"] = new(memoryMb, reservedMemoryMb, 1.0, 1, memoryMb, memoryStep),
            ["DISK_GB"] = new(diskGb, 0, 1.0, 1, diskGb, 1),
        }), CancellationToken.None);

    public static NodeRegistration Registration(string name, IReadOnlyDictionary<string, ResourceInventory> inventories, string zone = "az1")
        => new(name, $"http://127.0.0.2:{7000 + (name.GetHashCode(StringComparison.Ordinal) & 0xfff)}", "qemu", "TCG", zone, ["SSD"], inventories);

    public static Claim ClaimFor(Guid consumer, Guid node, long generation, long vcpus, long memoryMb, string kind = "vm")
        => new(consumer, kind, Project, node, generation, new Dictionary<string, long> { ["VCPU"] = vcpus, ["MEMORY_MB"] = memoryMb });

    public async Task<long> GenerationAsync(Guid node)
        => await ScalarAsync<long>("SELECT generation FROM nodes WHERE id = $1", node);

    /// <summary>The sum of a node's allocations of one class, 0 when none.</summary>
    public async Task<long> UsedAsync(Guid node, string resourceClass)
        => await ScalarAsync<long>("SELECT coalesce(sum(used), 0)::bigint FROM allocations WHERE node_id = $1 AND resource_class = $2", node, resourceClass);

    /// <summary>A fingerprint of the whole ledger, to prove that a refused claim changed nothing.</summary>
    public async Task<string> LedgerFingerprintAsync()
        => await ScalarAsync<string>("""
            SELECT coalesce((SELECT string_agg(id::text || ':' || generation, ',' ORDER BY id) FROM nodes), '') || '|' ||
                   coalesce((SELECT string_agg(id::text || ':' || generation, ',' ORDER BY id) FROM consumers), '') || '|' ||
                   coalesce((SELECT string_agg(consumer_id::text || ':' || node_id || ':' || resource_class || ':' || used, ',' ORDER BY consumer_id, node_id, resource_class) FROM allocations), '')
            """);

    /// <summary>Inserts a VM row, as the API does before the scheduler places it.</summary>
    public async Task InsertVmAsync(Guid id, Guid? node, string state = "PENDING", int vcpus = 1, long memoryMb = 512, NpgsqlTransaction? transaction = null)
    {
        const string Sql = """
            INSERT INTO vms (id, project_id, name, flavor_name, image_id, state, node_id, vcpus, memory_mb, disk_gb, labels, user_data, error, created_at, updated_at)
            VALUES ($1, $2, $3, 'm1.tiny', NULL, $4, $5, $6, $7, 0, '{}', NULL, NULL, now(), now())
            """;
        object?[] values = [id, Project, $"vm-{id:N}"[..16], state, node, vcpus, memoryMb];
        if (transaction is null)
        {
            await ExecuteAsync(Sql, values);
            return;
        }
        await using var command = new NpgsqlCommand(Sql, transaction.Connection, transaction);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
        }
        await command.ExecuteNonQueryAsync();
    }

    public async Task<int> ExecuteAsync(string sql, params object?[] values)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
        }
        return await command.ExecuteNonQueryAsync();
    }

    public async Task<T> ScalarAsync<T>(string sql, params object?[] values)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
        }
        var result = await command.ExecuteScalarAsync();
        return (T)Convert.ChangeType(result!, typeof(T), CultureInfo.InvariantCulture);
    }

    public async Task<List<string>> RowsAsync(string sql, params object?[] values)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
        }
        var rows = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add(string.Join(" | ", Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? "NULL" : Convert.ToString(reader.GetValue(i), CultureInfo.InvariantCulture))));
        }
        return rows;
    }

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();
}
