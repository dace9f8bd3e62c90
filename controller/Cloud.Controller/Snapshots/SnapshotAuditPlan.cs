using System.Globalization;

namespace Cloud.Controller.Snapshots;

/// <summary>A READY or LOST snapshot as the ledger has it, with what the audit needs to judge it.</summary>
/// <param name="Id">The snapshot.</param>
/// <param name="VmId">Its VM.</param>
/// <param name="State">READY or LOST.</param>
/// <param name="NodeId">The node recorded as holding its data; null when that node was removed.</param>
/// <param name="VmNodeId">The VM's node.</param>
/// <param name="Moving">A migration or resize of the VM is under way: the record may be about to move.</param>
internal sealed record AuditedSnapshot(Guid Id, Guid VmId, string State, Guid? NodeId, Guid? VmNodeId, bool Moving);

/// <summary>A node as the audit sees it.</summary>
/// <param name="Id">The node.</param>
/// <param name="Name">Its name, for the reasons the snapshots show.</param>
/// <param name="Up">UP in the ledger.</param>
/// <param name="LastHeartbeatAt">When it was last heard of.</param>
/// <param name="Held">
/// What the node reported, per VM (32-hex ids): the snapshots whose data it holds. Null when
/// the node was not asked (down) or did not answer: nothing is concluded from it then.
/// </param>
internal sealed record AuditedNode(Guid Id, string Name, bool Up, DateTimeOffset? LastHeartbeatAt, IReadOnlyDictionary<string, IReadOnlySet<string>>? Held);

/// <summary>A change the audit makes: the snapshot becomes <see cref="ToState"/>, with <see cref="Reason"/> when LOST.</summary>
internal sealed record AuditChange(Guid SnapshotId, Guid? NodeId, string ToState, string? Reason);

/// <summary>
/// The audit's rules, apart from the I/O so that they are tested alone. A READY snapshot is LOST
/// when its node is gone, down, or answers without its data; a LOST one is READY again when its
/// node, back up, reports the data, and is still the VM's node. A snapshot of a VM on the move
/// is left alone: the landing moves its record in the same transaction as the VM.
/// </summary>
internal static class SnapshotAuditPlan
{
    public static IReadOnlyList<AuditChange> Decide(IEnumerable<AuditedSnapshot> snapshots, IReadOnlyDictionary<Guid, AuditedNode> nodes)
    {
        var changes = new List<AuditChange>();
        foreach (var snapshot in snapshots)
        {
            if (snapshot.Moving)
            {
                continue;
            }
            var ready = snapshot.State == Vms.SnapshotStates.Ready;
            if (snapshot.NodeId is not { } nodeId || !nodes.TryGetValue(nodeId, out var node))
            {
                if (ready)
                {
                    changes.Add(new AuditChange(snapshot.Id, snapshot.NodeId, Vms.SnapshotStates.Lost, "the node that held its data was removed from the cloud"));
                }
                continue;
            }
            if (!node.Up)
            {
                if (ready)
                {
                    var since = node.LastHeartbeatAt is { } at ? " since " + at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture) : "";
                    changes.Add(new AuditChange(snapshot.Id, nodeId, Vms.SnapshotStates.Lost, $"node {node.Name} is down{since}"));
                }
                continue;
            }
            if (node.Held is not { } held)
            {
                continue;
            }
            var present = held.TryGetValue(snapshot.VmId.ToString("N"), out var ids) && ids.Contains(snapshot.Id.ToString("N"));
            if (ready && !present)
            {
                changes.Add(new AuditChange(snapshot.Id, nodeId, Vms.SnapshotStates.Lost, $"node {node.Name} does not hold its data"));
            }
            else if (!ready && present && snapshot.VmNodeId == nodeId)
            {
                changes.Add(new AuditChange(snapshot.Id, nodeId, Vms.SnapshotStates.Ready, null));
            }
        }
        return changes;
    }
}
