using Cloud.Controller.Snapshots;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Tests;

/// <summary>The snapshot audit's rules, without I/O: which snapshots become LOST, which READY again, and which are left alone.</summary>
public sealed class SnapshotAuditPlanTests
{
    private static readonly Guid NodeA = Guid.NewGuid();
    private static readonly Guid NodeB = Guid.NewGuid();
    private static readonly Guid Vm = Guid.NewGuid();

    private static AuditedSnapshot Snapshot(string state, Guid? node, Guid? vmNode = null, bool moving = false, Guid? id = null)
        => new(id ?? Guid.NewGuid(), Vm, state, node, vmNode ?? node, moving);

    private static Dictionary<Guid, AuditedNode> Nodes(params AuditedNode[] nodes) => nodes.ToDictionary(n => n.Id);

    private static AuditedNode Up(Guid id, string name, params Guid[] held)
        => new(id, name, true, null, new Dictionary<string, IReadOnlySet<string>> { [Vm.ToString("N")] = held.Select(h => h.ToString("N")).ToHashSet() });

    [Fact]
    public void A_ready_snapshot_on_a_down_node_is_lost_with_the_time_it_went_silent()
    {
        var snapshot = Snapshot("READY", NodeA);
        var down = new AuditedNode(NodeA, "agent-2", false, new DateTimeOffset(2026, 12, 7, 10, 0, 0, TimeSpan.Zero), null);

        var change = Assert.Single(SnapshotAuditPlan.Decide([snapshot], Nodes(down)));

        Assert.Equal((snapshot.Id, "LOST", "node agent-2 is down since 2026-12-07 10:00:00 UTC"), (change.SnapshotId, change.ToState, change.Reason));
    }

    [Fact]
    public void A_ready_snapshot_whose_node_was_removed_is_lost()
    {
        // No node any more (the foreign key let go of it), or a node row gone since the snapshot was read.
        var changes = SnapshotAuditPlan.Decide([Snapshot("READY", null), Snapshot("READY", NodeB), Snapshot("LOST", null)], Nodes(Up(NodeA, "a")));

        Assert.Equal(2, changes.Count);
        Assert.All(changes, c => Assert.Equal(("LOST", "the node that held its data was removed from the cloud"), (c.ToState, c.Reason)));
    }

    [Fact]
    public void A_ready_snapshot_its_node_does_not_report_is_lost_and_one_it_reports_is_left_alone()
    {
        var held = Snapshot("READY", NodeA);
        var missing = Snapshot("READY", NodeA);

        var change = Assert.Single(SnapshotAuditPlan.Decide([held, missing], Nodes(Up(NodeA, "agent-1", held.Id))));

        Assert.Equal((missing.Id, "LOST", "node agent-1 does not hold its data"), (change.SnapshotId, change.ToState, change.Reason));
    }

    [Fact]
    public void A_lost_snapshot_is_ready_again_only_when_its_node_reports_it_and_still_has_the_vm()
    {
        var back = Snapshot("LOST", NodeA);
        var stillGone = Snapshot("LOST", NodeA);
        var vmMovedOn = Snapshot("LOST", NodeA, vmNode: NodeB);

        var change = Assert.Single(SnapshotAuditPlan.Decide([back, stillGone, vmMovedOn], Nodes(Up(NodeA, "agent-1", back.Id, vmMovedOn.Id), Up(NodeB, "agent-2"))));

        Assert.Equal((back.Id, "READY", (string?)null), (change.SnapshotId, change.ToState, change.Reason));
    }

    [Fact]
    public void Nothing_is_concluded_for_a_vm_on_the_move_a_node_that_did_not_answer_or_a_lost_snapshot_on_a_down_node()
    {
        var unanswered = new AuditedNode(NodeA, "quiet", true, null, null);
        var down = new AuditedNode(NodeB, "down", false, null, null);

        Assert.Empty(SnapshotAuditPlan.Decide(
            [Snapshot("READY", NodeA), Snapshot("READY", NodeB, moving: true), Snapshot("LOST", NodeB)],
            Nodes(unanswered, down)));
    }

    [Theory]
    [InlineData("00:00:00.500", 8, "Snapshots:AuditInterval")]
    [InlineData("00:01:00", 0, "Snapshots:ConcurrentNodes")]
    public void Options_that_cannot_work_are_refused_naming_the_setting(string interval, int concurrent, string setting)
    {
        var result = new SnapshotAuditOptionsValidator().Validate(null, new SnapshotAuditOptions { AuditInterval = TimeSpan.Parse(interval, System.Globalization.CultureInfo.InvariantCulture), ConcurrentNodes = concurrent });

        Assert.True(result.Failed);
        Assert.Contains(setting, result.FailureMessage, StringComparison.Ordinal);
        Assert.True(new SnapshotAuditOptionsValidator().Validate(null, new SnapshotAuditOptions()).Succeeded);
        Assert.Equal(TimeSpan.FromSeconds(60), new SnapshotAuditOptions().AuditInterval);
    }
}
