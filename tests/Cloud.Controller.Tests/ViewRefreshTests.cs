using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>
/// How a replica's view learns what other replicas and operators changed: checks that reload only
/// the nodes that differ, against a real PostgreSQL.
/// </summary>
public sealed class ViewRefreshTests : IAsyncLifetime
{
    private static readonly TimeSpan Refresh = TimeSpan.FromMilliseconds(100);
    private SchedulerReplicas _db = null!;

    public async Task InitializeAsync() => _db = await SchedulerReplicas.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    [Fact]
    public async Task A_replica_sees_others_claims_drains_failures_and_new_and_removed_nodes_without_loading_everything_again()
    {
        var claimed = await _db.AddNodeAsync("claimed", vcpus: 8);
        var drained = await _db.AddNodeAsync("drained");
        var failed = await _db.AddNodeAsync("failed");
        var removed = await _db.AddNodeAsync("removed");
        var watcher = _db.NewReplica(refreshInterval: Refresh);
        var other = _db.NewReplica("pack", refreshInterval: Refresh);
        Assert.Equal(4, (await watcher.NodesAsync(CancellationToken.None)).Count);
        var loadedAt = watcher.ViewLoadedAt;

        // Five vCPUs fit only on the 8-vCPU node.
        var vm = Guid.NewGuid();
        var placed = await other.PlaceAsync(vm, SchedulerReplicas.Project, new PlacementRequest(new ResourceRequest(5, 1024, 0)),
            null, (tx, node, ct) => SchedulerReplicas.InsertVmsAsync(tx, [(vm, node.NodeId)]), CancellationToken.None);
        await _db.ExecuteAsync("UPDATE nodes SET schedulable = false WHERE id = $1", drained);
        await _db.ExecuteAsync("UPDATE nodes SET state = 'DOWN' WHERE id = $1", failed);
        await _db.ExecuteAsync("DELETE FROM nodes WHERE id = $1", removed);
        var added = await _db.AddNodeAsync("added");

        var nodes = await EventuallyAsync(watcher, n =>
            n.Any(x => x.NodeId == added) && n.All(x => x.NodeId != removed)
            && n.Single(x => x.NodeId == claimed).Used.GetValueOrDefault(ResourceClasses.Vcpu) == 5
            && !n.Single(x => x.NodeId == drained).Schedulable && n.Single(x => x.NodeId == failed).State == "DOWN");

        Assert.Equal(claimed, placed.Node?.NodeId);
        Assert.Equal(4, nodes.Count);
        Assert.Equal(loadedAt, watcher.ViewLoadedAt);
    }

    [Fact]
    public async Task A_node_registered_again_with_new_traits_or_zone_gets_a_new_generation_and_an_unchanged_one_does_not()
    {
        var node = await _db.AddNodeAsync("traits", traits: ["ssd"]);
        var watcher = _db.NewReplica(refreshInterval: Refresh);
        await watcher.NodesAsync(CancellationToken.None);
        const string Generation = "SELECT generation FROM nodes WHERE name = 'traits'";
        var before = await _db.ScalarAsync(Generation);

        await _db.AddNodeAsync("traits", traits: ["ssd"]);
        var unchanged = await _db.ScalarAsync(Generation);
        await _db.AddNodeAsync("traits", traits: ["ssd", "gpu"], zone: "az2");

        Assert.Equal(before, unchanged);
        Assert.Equal(before + 1, await _db.ScalarAsync(Generation));
        var nodes = await EventuallyAsync(watcher, n => n.Single(x => x.NodeId == node).Traits.Contains("gpu"));
        Assert.Equal("az2", nodes.Single(x => x.NodeId == node).AvailabilityZone);
    }

    [Fact]
    public async Task A_node_going_down_or_joining_an_aggregate_reaches_a_listening_replica_at_once_and_claims_and_heartbeats_notify_nobody()
    {
        var node = await _db.AddNodeAsync("listened");
        // Checks an hour apart: only a notification can bring the change before the decision.
        var (watcher, listener) = await _db.NewListeningReplicaAsync(TimeSpan.FromHours(1));
        await listener.Listening.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal("UP", (await watcher.NodesAsync(CancellationToken.None)).Single().State);
        var received = listener.Received;

        await _db.ExecuteAsync("UPDATE nodes SET generation = generation + 1 WHERE id = $1", node);
        await _db.Ledger.TouchHeartbeatAsync(node, CancellationToken.None);
        await _db.ExecuteAsync("UPDATE nodes SET state = 'DOWN' WHERE id = $1", node);
        await EventuallyAsync(() => listener.Received > received);
        // Time for any other notification to arrive: there must be none.
        await Task.Delay(500);

        // The bump and the heartbeat (which sets state to what it was) sent nothing.
        Assert.Equal(received + 1, listener.Received);
        Assert.Equal("DOWN", (await watcher.NodesAsync(CancellationToken.None)).Single().State);

        await _db.ExecuteAsync("INSERT INTO aggregates (id, name, availability_zone, created_at) VALUES ($1, 'listened-zone', 'az9', now())", Guid.NewGuid());
        // The membership's trigger bumps the node's generation in the same transaction.
        await _db.ExecuteAsync("INSERT INTO aggregate_nodes (aggregate_id, node_id) SELECT id, $1 FROM aggregates WHERE name = 'listened-zone'", node);
        await EventuallyAsync(() => listener.Received > received + 1);
        Assert.Equal("az9", (await watcher.NodesAsync(CancellationToken.None)).Single().AvailabilityZone);
    }

    /// <summary>The replica's view once it satisfies <paramref name="seen"/>; each call may start a check in the background.</summary>
    private static async Task<IReadOnlyList<NodeCapacity>> EventuallyAsync(Scheduler replica, Func<IReadOnlyList<NodeCapacity>, bool> seen)
    {
        IReadOnlyList<NodeCapacity> nodes = [];
        await EventuallyAsync(async () => seen(nodes = await replica.NodesAsync(CancellationToken.None)));
        return nodes;
    }

    private static Task EventuallyAsync(Func<bool> condition) => EventuallyAsync(() => Task.FromResult(condition()));

    private static async Task EventuallyAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "Not seen within 15 s.");
            await Task.Delay(Refresh / 2);
        }
    }
}
