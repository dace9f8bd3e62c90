using Cloud.Controller.Data.Tests.Support;

namespace Cloud.Controller.Data.Tests;

public sealed class LoadTests : IAsyncLifetime
{
    private LedgerDatabase _db = null!;

    public async Task InitializeAsync() => _db = await LedgerDatabase.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    [Fact]
    public async Task LoadAsync_NodesWithAndWithoutUsage_ReportsInventoriesUsageAndFree()
    {
        var busy = await _db.AddNodeAsync("busy", vcpus: 8, memoryMb: 8192, cpuRatio: 2.0, reservedMemoryMb: 1024);
        var idle = await _db.AddNodeAsync("idle", vcpus: 4, memoryMb: 4096);
        var bare = await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("bare", new Dictionary<string, ResourceInventory>()), CancellationToken.None);
        Assert.True((await _db.Ledger.TryClaimAsync(
            [LedgerDatabase.ClaimFor(Guid.NewGuid(), busy, 0, 3, 1024), LedgerDatabase.ClaimFor(Guid.NewGuid(), busy, 0, 2, 2048)],
            null, CancellationToken.None)).Succeeded);

        var nodes = (await _db.Ledger.LoadAsync(CancellationToken.None)).ToDictionary(n => n.NodeId);

        Assert.Equal([bare, busy, idle], nodes.Values.Select(n => n.NodeId));
        var b = nodes[busy];
        Assert.Equal(1, b.Generation);
        Assert.Equal(new Dictionary<string, long> { ["VCPU"] = 5, ["MEMORY_MB"] = 3072 }.OrderBy(kv => kv.Key), b.Used.OrderBy(kv => kv.Key));
        Assert.Equal(11, b.Free("VCPU"));
        Assert.Equal(4096, b.Free("MEMORY_MB"));
        Assert.Equal(100, b.Free("DISK_GB"));
        Assert.Equal(new ResourceInventory(8, 0, 2.0, 1, 8, 1), b.Inventories["VCPU"]);
        Assert.Empty(nodes[idle].Used);
        Assert.Equal(4, nodes[idle].Free("VCPU"));
        Assert.Empty(nodes[bare].Inventories);
        Assert.Equal(0, nodes[bare].Free("VCPU"));
        Assert.Equal(("http://127.0.0.2", "UP", true), (nodes[busy].Address[..16], nodes[busy].State, nodes[busy].Schedulable));
    }

    [Fact]
    public async Task LoadNodeAsync_UnknownNode_ReturnsNull()
    {
        await _db.AddNodeAsync("n1");

        Assert.Null(await _db.Ledger.LoadNodeAsync(Guid.NewGuid(), CancellationToken.None));
    }

    [Fact]
    public async Task LoadNodesAsync_SomeNodes_ReturnsThoseThatExistAsLoadAsyncSeesThem()
    {
        var busy = await _db.AddNodeAsync("busy", vcpus: 8, memoryMb: 8192);
        var idle = await _db.AddNodeAsync("idle", vcpus: 4, memoryMb: 4096);
        await _db.AddNodeAsync("other");
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), busy, 0, 3, 1024)], null, CancellationToken.None)).Succeeded);

        var some = await _db.Ledger.LoadNodesAsync([busy, idle, Guid.NewGuid()], CancellationToken.None);
        var all = (await _db.Ledger.LoadAsync(CancellationToken.None)).ToDictionary(n => n.NodeId);

        Assert.Equal(new[] { busy, idle }.Order(), some.Select(n => n.NodeId).Order());
        Assert.All(some, n => Assert.Equal(all[n.NodeId].Used.OrderBy(kv => kv.Key), n.Used.OrderBy(kv => kv.Key)));
        Assert.Equal(5, some.Single(n => n.NodeId == busy).Free("VCPU"));
    }

    [Fact]
    public async Task LoadAsync_TenThousandNodes_AgreesWithSql()
    {
        // Built by SQL: 10,000 nodes with three inventories each, and a VM's worth of usage on
        // every third node.
        await _db.ExecuteAsync("""
            INSERT INTO nodes (id, name, address, hypervisor, accelerator, availability_zone, traits, state, schedulable, generation, registered_at, last_heartbeat_at)
            SELECT gen_random_uuid(), 'node-' || g, 'http://10.0.0.1:7070', 'fake', 'NONE', 'az' || (g % 3), ARRAY['SSD'], 'UP', true, g % 7, now(), now()
              FROM generate_series(1, 10000) AS g;
            INSERT INTO inventories (node_id, resource_class, total, reserved, allocation_ratio, min_unit, max_unit, step_size)
            SELECT n.id, c.resource_class, c.total, 0, c.ratio, 1, c.total, 1
              FROM nodes n CROSS JOIN (VALUES ('VCPU', 64, 4.0), ('MEMORY_MB', 262144, 1.0), ('DISK_GB', 2000, 1.0)) AS c(resource_class, total, ratio);
            INSERT INTO consumers (id, kind, project_id, created_at, generation)
            SELECT n.id, 'vm', 'p', now(), 0 FROM nodes n WHERE substr(n.name, 6)::int % 3 = 0;
            INSERT INTO allocations (consumer_id, node_id, resource_class, used)
            SELECT c.id, c.id, r.resource_class, r.used
              FROM consumers c CROSS JOIN (VALUES ('VCPU', 2), ('MEMORY_MB', 4096)) AS r(resource_class, used);
            """);

        var nodes = await _db.Ledger.LoadAsync(CancellationToken.None);

        Assert.Equal(10_000, nodes.Count);
        Assert.Equal(3333 * 2, nodes.Sum(n => n.Used.GetValueOrDefault("VCPU")));
        Assert.Equal(await _db.ScalarAsync<long>("SELECT sum(generation) FROM nodes"), nodes.Sum(n => n.Generation));
        Assert.All(nodes, n => Assert.Equal(3, n.Inventories.Count));
        Assert.Equal(10_000L * 256 - 3333 * 2, nodes.Sum(n => n.Free("VCPU")));
        Assert.Equal(3334, nodes.Count(n => n.AvailabilityZone == "az1"));
    }
}
