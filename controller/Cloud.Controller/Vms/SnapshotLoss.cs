using Cloud.Controller.Nodes;
using Grpc.Core;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Vms;

/// <summary>
/// What the controller concludes when an agent answers NOT_FOUND for a snapshot it has on record:
/// the node is asked once more, for the VM's snapshots, so that a VM missing for another reason,
/// or a transient answer, does not make a snapshot LOST by mistake.
/// </summary>
internal static class SnapshotLoss
{
    /// <summary>The reason a LOST snapshot shows when its node answered without it.</summary>
    public static string NotHeldReason(string nodeName) => $"node {nodeName} no longer holds its data";

    /// <summary>
    /// True when the node confirms that it does not hold the snapshot: it has the VM without it,
    /// or not the VM at all (whose folder held the snapshot). False when it lists the snapshot,
    /// or could not be asked.
    /// </summary>
    public static async Task<bool> ConfirmedAsync(AgentConnection agent, Guid vmId, Guid snapshotId, CancellationToken cancellationToken)
    {
        try
        {
            var listed = await agent.CallAsync((c, o) => c.ListSnapshotsAsync(new AgentV1.VmRef { VmId = vmId.ToString("N") }, o), cancellationToken);
            var id = snapshotId.ToString("N");
            return !listed.Snapshots.Any(s => s.SnapshotId == id);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            return true;
        }
        catch (RpcException)
        {
            return false;
        }
    }
}
