using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;

namespace Cloud.Controller.Tests;

/// <summary>The scheduler's in-memory view; no I/O.</summary>
public sealed class CapacityViewTests
{
    private static NodeCapacity Node(string name, long generation = 1, long vcpuUsed = 0)
        => new(Guid.NewGuid(), name, $"http://{name}:7070", "UP", true, "az1", [], generation,
            new Dictionary<string, ResourceInventory> { ["VCPU"] = new(8, 0, 1.0, 1, 8, 1), ["MEMORY_MB"] = new(8192, 0, 1.0, 1, 8192, 1) },
            new Dictionary<string, long> { ["VCPU"] = vcpuUsed });

    private static PlacementRequest Request(int vcpus) => new(new ResourceRequest(vcpus, 512, 0));

    [Fact]
    public void Apply_adds_the_usage_and_the_generation_in_place()
    {
        var view = new CapacityView();
        var node = Node("a", generation: 4, vcpuUsed: 1);
        view.Replace([node, Node("b")], DateTimeOffset.UnixEpoch, view.Expirations);
        var before = view.Nodes;
        var epoch = view.EpochOf(node.NodeId);

        Assert.True(view.Apply(node.NodeId, [Request(2), Request(1)], epoch));

        var applied = view.Find(node.NodeId)!;
        Assert.Equal(4, applied.Used["VCPU"]);
        Assert.Equal(1024, applied.Used["MEMORY_MB"]);
        Assert.Equal(5, applied.Generation);
        // One element replaced, not the array copied.
        Assert.Same(before, view.Nodes);
    }

    [Fact]
    public void Two_claims_decided_on_the_same_load_both_count()
    {
        var view = new CapacityView();
        var node = Node("a");
        view.Replace([node], DateTimeOffset.UnixEpoch, view.Expirations);
        var epoch = view.EpochOf(node.NodeId);

        Assert.True(view.Apply(node.NodeId, [Request(2)], epoch));
        Assert.True(view.Apply(node.NodeId, [Request(3)], epoch));

        Assert.Equal(5, view.Find(node.NodeId)!.Used["VCPU"]);
    }

    [Fact]
    public void A_claim_decided_before_the_node_was_reloaded_is_not_added_again()
    {
        var view = new CapacityView();
        var node = Node("a");
        view.Replace([node], DateTimeOffset.UnixEpoch, view.Expirations);
        var epoch = view.EpochOf(node.NodeId);
        // The reload already holds the claim.
        var reloaded = Node("a", generation: 9, vcpuUsed: 2) with { NodeId = node.NodeId };
        view.Set(node.NodeId, reloaded);

        Assert.False(view.Apply(node.NodeId, [Request(2)], epoch));

        Assert.Same(reloaded, view.Find(node.NodeId));
    }

    [Fact]
    public void Set_replaces_adds_and_removes_nodes()
    {
        var view = new CapacityView();
        var a = Node("a");
        var b = Node("b");
        view.Replace([a, b], DateTimeOffset.UnixEpoch, view.Expirations);

        view.Set(a.NodeId, a with { State = "DOWN" });
        var c = Node("c");
        view.Set(c.NodeId, c);
        view.Set(b.NodeId, null);

        Assert.Equal(["a", "c"], view.Nodes.Select(n => n.Name));
        Assert.Equal("DOWN", view.Find(a.NodeId)!.State);
        Assert.Null(view.Find(b.NodeId));
        Assert.Same(c, view.FindByName("c"));
    }

    [Fact]
    public void Expire_forces_a_check_but_keeps_the_nodes_and_the_load_time()
    {
        var view = new CapacityView();
        var loadedAt = DateTimeOffset.UnixEpoch.AddYears(50);
        view.Replace([Node("a")], loadedAt, view.Expirations);
        Assert.Equal(loadedAt, view.CheckedAt);

        view.Expire();

        Assert.Equal(DateTimeOffset.MinValue, view.CheckedAt);
        Assert.Equal(loadedAt, view.LoadedAt);
        Assert.Equal(1, view.Count);
    }

    [Fact]
    public void A_check_or_load_begun_before_an_expiry_leaves_the_view_expired()
    {
        var view = new CapacityView();
        var before = view.Expirations;
        view.Expire();
        view.Replace([Node("a")], DateTimeOffset.UnixEpoch, before);
        Assert.Equal(DateTimeOffset.MinValue, view.CheckedAt);

        var checking = view.Expirations;
        view.Expire();
        view.MarkChecked(DateTimeOffset.UnixEpoch.AddHours(1), checking);
        Assert.Equal(DateTimeOffset.MinValue, view.CheckedAt);

        view.MarkChecked(DateTimeOffset.UnixEpoch.AddHours(2), view.Expirations);
        Assert.Equal(DateTimeOffset.UnixEpoch.AddHours(2), view.CheckedAt);
    }

    [Fact]
    public void Changed_lists_nodes_with_another_generation_state_or_flag_new_nodes_and_nodes_gone()
    {
        var view = new CapacityView();
        var same = Node("same", generation: 3);
        var bumped = Node("bumped", generation: 3);
        var down = Node("down");
        var drained = Node("drained");
        var gone = Node("gone");
        view.Replace([same, bumped, down, drained, gone], DateTimeOffset.UnixEpoch, view.Expirations);
        var added = Guid.NewGuid();

        var changed = view.Changed(
        [
            new NodeVersion(same.NodeId, 3, "UP", true),
            new NodeVersion(bumped.NodeId, 4, "UP", true),
            new NodeVersion(down.NodeId, 1, "DOWN", true),
            new NodeVersion(drained.NodeId, 1, "UP", false),
            new NodeVersion(added, 0, "UP", true),
        ]);

        Assert.Equal(new[] { bumped.NodeId, down.NodeId, drained.NodeId, added, gone.NodeId }.Order(), changed.Order());
        Assert.Empty(view.Changed([.. new[] { same, bumped, down, drained, gone }.Select(n => new NodeVersion(n.NodeId, n.Generation, n.State, n.Schedulable))]));
    }
}
