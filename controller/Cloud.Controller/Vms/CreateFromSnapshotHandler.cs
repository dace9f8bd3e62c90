using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Cloud.Controller.Operations;
using Cloud.Controller.Quotas;
using Cloud.Controller.Scheduling;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Cloud.Controller.Nodes;

namespace Cloud.Controller.Vms;

/// <summary>
/// vm.create_from_snapshot: the node that holds the snapshot exports its disk into its image
/// store; the scheduler places the new VM like any create, with the VM's own constraints (the
/// snapshot's node is allowed, not required); a node other than the snapshot's pulls the export
/// from it; then that node creates the VM over the image. Every step is safe to run again after a
/// crash: the export is recorded in the snapshot's row (and found there), a placed VM is not
/// placed again, a node that holds the image answers its pull at once, and the agent's create
/// is idempotent. A failure after placement gives the claim and the quota back.
/// </summary>
internal sealed partial class CreateFromSnapshotHandler(
    VmHandlerSupport support,
    Scheduler scheduler,
    AgentConnections agents,
    AgentVmCreation creation,
    SnapshotExports exports,
    ILogger<CreateFromSnapshotHandler> logger) : IOperationHandler
{
    public string Kind => OperationKinds.VmCreateFromSnapshot;

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        var snapshotId = Guid.Parse(VmHandlerSupport.Input<CreateVmRequest>(operation).Snapshot);
        var vmId = Guid.Parse(operation.TargetId);
        VmEntity vm;
        SnapshotEntity? snapshot;
        NodeEntity? holder;
        await using (var db = await support.Contexts.CreateDbContextAsync(cancellationToken))
        {
            vm = await db.Vms.AsNoTracking().SingleAsync(v => v.Id == vmId, cancellationToken);
            snapshot = await db.Snapshots.AsNoTracking().SingleOrDefaultAsync(s => s.Id == snapshotId, cancellationToken);
            holder = snapshot?.NodeId is { } nodeId ? await db.Nodes.AsNoTracking().SingleOrDefaultAsync(n => n.Id == nodeId, cancellationToken) : null;
        }
        if (vm.State is VmStates.Deleting or VmStates.Deleted)
        {
            await support.FinishAsync(operation.Id, ApiException.CodeName(StatusCode.Aborted), "The VM was deleted before it was created.", null, cancellationToken);
            return;
        }

        SnapshotExport? export;
        if (vm.NodeId is null)
        {
            if (Unusable(snapshot, snapshotId, holder) is { } why)
            {
                await FailUnplacedAsync(operation.Id, vm.Id, ApiException.CodeName(StatusCode.FailedPrecondition), why, VmStates.Error, cancellationToken);
                return;
            }
            await support.ProgressAsync(operation.Id, 10, cancellationToken);
            try
            {
                export = await exports.ExportAsync(snapshot!, holder!, vm.ImageId!, cancellationToken);
            }
            catch (RpcException e)
            {
                if (e.StatusCode == StatusCode.NotFound && await SnapshotLoss.ConfirmedAsync(agents.For(holder!), snapshot!.VmId, snapshotId, cancellationToken))
                {
                    await FailLostAsync(operation.Id, vm.Id, snapshotId, holder!, cancellationToken);
                    return;
                }
                await FailUnplacedAsync(operation.Id, vm.Id, ApiException.CodeName(e.StatusCode), $"Node {holder!.Name} could not export the snapshot: {e.Status.Detail}", VmStates.Error, cancellationToken);
                return;
            }
            await support.ProgressAsync(operation.Id, 30, cancellationToken);
            if (await PlaceAsync(operation.Id, vm, cancellationToken) is not { } placed)
            {
                return;
            }
            vm = placed;
        }
        else
        {
            // Resumed after placement: the export was recorded before the VM was placed.
            export = await exports.RecordedAsync(snapshotId, cancellationToken);
        }

        NodeEntity node;
        await using (var db = await support.Contexts.CreateDbContextAsync(cancellationToken))
        {
            node = await db.Nodes.AsNoTracking().SingleAsync(n => n.Id == vm.NodeId, cancellationToken);
        }
        if (export is null)
        {
            await FailPlacedAsync(operation.Id, vm.Id, ApiException.CodeName(StatusCode.FailedPrecondition),
                "The snapshot's export, or the node that made it, is gone; create the VM again.", cancellationToken);
            return;
        }
        await support.ProgressAsync(operation.Id, 50, cancellationToken);
        try
        {
            await exports.EnsureOnNodeAsync(export, vm.ImageId!, node, cancellationToken);
        }
        catch (RpcException e)
        {
            Log.PullFailed(logger, vm.Id, node.Name, export.Node.Name, e.Status.Detail);
            await FailPlacedAsync(operation.Id, vm.Id, ApiException.CodeName(e.StatusCode),
                $"Node {node.Name} could not pull the snapshot's disk from node {export.Node.Name}: {e.Status.Detail}", cancellationToken);
            return;
        }

        await support.ProgressAsync(operation.Id, 70, cancellationToken);
        if (await creation.CreateAsync(vm, node, withImage: false, cancellationToken) is { } refusal)
        {
            await FailPlacedAsync(operation.Id, vm.Id, ApiException.CodeName(refusal.Code), refusal.Message, cancellationToken);
            return;
        }
        await support.FinishAsync(operation.Id, null, null, t => VmHandlerSupport.ExecuteAsync(t,
            "UPDATE vms SET state = 'RUNNING', updated_at = $2 WHERE id = $1 AND state = 'CREATING'", cancellationToken, vm.Id, support.Time.GetUtcNow()), cancellationToken);
    }

    /// <summary>Why the snapshot cannot be created from (gone, LOST with its reason, on no node), or null.</summary>
    private static string? Unusable(SnapshotEntity? snapshot, Guid snapshotId, NodeEntity? holder) => snapshot switch
    {
        null or { State: SnapshotStates.Deleted or SnapshotStates.Deleting } => $"Snapshot {snapshotId} was deleted.",
        { State: SnapshotStates.Lost } => $"Snapshot {snapshotId} is LOST: {snapshot.Error}.",
        { State: not SnapshotStates.Ready } => $"Snapshot {snapshotId} is {snapshot.State}.",
        _ when holder is null => $"No node holds the data of snapshot {snapshotId} any more.",
        _ => null,
    };

    /// <summary>
    /// Places the VM where the scheduler chooses, with its own constraints, and charges its quota
    /// in the claim's transaction, as vm.create does; the VM as placed, or null (and the operation
    /// failed) when it could not be.
    /// </summary>
    private async Task<VmEntity?> PlaceAsync(Guid operationId, VmEntity vm, CancellationToken cancellationToken)
    {
        if (!PlacementHints.TryParse(vm.Labels, out var constraints, out var hintError))
        {
            await FailUnplacedAsync(operationId, vm.Id, ApiException.CodeName(StatusCode.InvalidArgument), hintError!, VmStates.Error, cancellationToken);
            return null;
        }
        var request = new PlacementRequest(new ResourceRequest(vm.Vcpus, vm.MemoryMb, vm.DiskGb), constraints);
        PlacementResult placement;
        try
        {
            placement = await scheduler.PlaceAsync(vm.Id, vm.ProjectId, request,
                async (transaction, node, ct) =>
                {
                    if (!await VmRowUpdates.MarkPlacedAsync(transaction, vm.Id, node.NodeId, support.Time.GetUtcNow(), ct))
                    {
                        throw new InvalidOperationException($"VM {vm.Id} changed while it was being placed.");
                    }
                    await QuotaLedger.ChargeAsync(transaction, vm.ProjectId, QuotaUsage.ForVm(vm.Vcpus, vm.MemoryMb, vm.DiskGb), ct);
                },
                cancellationToken);
        }
        catch (QuotaExceededException e)
        {
            // Refused by the quota, the VM never existed anywhere.
            await FailUnplacedAsync(operationId, vm.Id, ApiException.CodeName(StatusCode.ResourceExhausted), e.Message, VmStates.Deleted, cancellationToken);
            return null;
        }
        if (!placement.Placed)
        {
            await FailUnplacedAsync(operationId, vm.Id, ApiException.CodeName(StatusCode.ResourceExhausted), placement.Failure!.Summary, VmStates.Error, cancellationToken);
            return null;
        }
        await using var db = await support.Contexts.CreateDbContextAsync(cancellationToken);
        return await db.Vms.AsNoTracking().SingleAsync(v => v.Id == vm.Id, cancellationToken);
    }

    /// <summary>The snapshot's node confirmed it does not hold the data: the snapshot is LOST and the operation says so.</summary>
    private Task FailLostAsync(Guid operationId, Guid vmId, Guid snapshotId, NodeEntity holder, CancellationToken cancellationToken)
    {
        var reason = SnapshotLoss.NotHeldReason(holder.Name);
        var message = $"Snapshot {snapshotId} is LOST: {reason}.";
        return support.FinishAsync(operationId, ApiException.CodeName(StatusCode.FailedPrecondition), message, async t =>
        {
            await SnapshotRows.MarkLostAsync(t, snapshotId, holder.Id, reason, support.Time.GetUtcNow(), cancellationToken);
            await VmRowUpdates.MarkUnplacedAsync(t, vmId, VmStates.Error, message, support.Time.GetUtcNow(), cancellationToken);
        }, cancellationToken);
    }

    private Task FailUnplacedAsync(Guid operationId, Guid vmId, string code, string message, string state, CancellationToken cancellationToken)
        => support.FinishAsync(operationId, code, message,
            t => VmRowUpdates.MarkUnplacedAsync(t, vmId, state, message, support.Time.GetUtcNow(), cancellationToken), cancellationToken);

    /// <summary>Fails a placed VM: its quota charge and its claim are given back with the operation's end.</summary>
    private Task FailPlacedAsync(Guid operationId, Guid vmId, string code, string message, CancellationToken cancellationToken)
        => support.FinishAsync(operationId, code, message,
            t => creation.ReleaseAsync(t, vmId, message, support.Time.GetUtcNow(), cancellationToken), cancellationToken);

    private static partial class Log
    {
        [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "Node {NodeName} could not pull the snapshot export for VM {VmId} from node {SourceName}: {Detail}")]
        public static partial void PullFailed(ILogger logger, Guid vmId, string nodeName, string sourceName, string detail);
    }
}
