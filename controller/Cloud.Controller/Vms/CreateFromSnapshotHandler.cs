using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
using Cloud.Controller.Operations;
using Cloud.Controller.Quotas;
using Cloud.Controller.Scheduling;
using Cloud.Contracts.Compute.V1;
using Cloud.Grpc;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Vms;

/// <summary>
/// vm.create_from_snapshot: a snapshot lives on its VM's node, so the new VM goes there. The
/// node's agent exports the snapshot's disk into its image store, the new VM is claimed on that
/// node (with its quota charge and its row's node, in one transaction), and the agent creates
/// it over the exported image. Every step is safe to run again: the export and the agent's
/// create are idempotent, and a VM already placed is not claimed again.
/// </summary>
internal sealed class CreateFromSnapshotHandler(
    VmHandlerSupport support,
    NpgsqlDataSource dataSource,
    Scheduler scheduler,
    CapacityLedger ledger,
    AgentConnections agents,
    VmSpecs specs) : IOperationHandler
{
    public string Kind => OperationKinds.VmCreateFromSnapshot;

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        var input = VmHandlerSupport.Input<CreateVmRequest>(operation);
        var snapshotId = Guid.Parse(input.Snapshot);
        var vmId = Guid.Parse(operation.TargetId);
        VmEntity vm;
        SnapshotEntity? snapshot;
        VmEntity? source;
        NodeEntity? node;
        await using (var db = await support.Contexts.CreateDbContextAsync(cancellationToken))
        {
            vm = await db.Vms.AsNoTracking().SingleAsync(v => v.Id == vmId, cancellationToken);
            snapshot = await db.Snapshots.AsNoTracking().SingleOrDefaultAsync(s => s.Id == snapshotId && s.State == SnapshotStates.Ready, cancellationToken);
            source = snapshot is null ? null : await db.Vms.AsNoTracking().SingleOrDefaultAsync(v => v.Id == snapshot.VmId, cancellationToken);
            var nodeId = vm.NodeId ?? source?.NodeId;
            node = nodeId is null ? null : await db.Nodes.AsNoTracking().SingleOrDefaultAsync(n => n.Id == nodeId, cancellationToken);
        }
        if (vm.State is VmStates.Deleting or VmStates.Deleted)
        {
            await support.FinishAsync(operation.Id, ApiException.CodeName(StatusCode.Aborted), "The VM was deleted before it was created.", null, cancellationToken);
            return;
        }
        if (node is null || (vm.NodeId is null && (snapshot is null || source?.NodeId is null)))
        {
            await FailAsync(operation.Id, vm.Id, ApiException.CodeName(StatusCode.FailedPrecondition), "The snapshot or its VM's node is gone.", release: false, cancellationToken);
            return;
        }
        var agent = agents.For(node.Address);
        if (vm.NodeId is null)
        {
            await support.ProgressAsync(operation.Id, 10, cancellationToken);
            try
            {
                await agent.CallAsync((c, o) => c.ExportSnapshotAsync(new AgentV1.ExportSnapshotRequest
                {
                    VmId = source!.Id.ToString("N"),
                    SnapshotId = snapshotId.ToString("N"),
                    ImageId = vm.ImageId!,
                }, o), cancellationToken);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
                await FailLostAsync(operation.Id, vm.Id, snapshotId, source!.Id, node, e, cancellationToken);
                return;
            }
            catch (RpcException e) when (e.StatusCode != StatusCode.AlreadyExists)
            {
                await FailAsync(operation.Id, vm.Id, ApiException.CodeName(e.StatusCode), $"Node {node.Name} could not export the snapshot: {e.Status.Detail}", release: false, cancellationToken);
                return;
            }
            await support.ProgressAsync(operation.Id, 40, cancellationToken);
            if (await ClaimAsync(vm, node, cancellationToken) is { } refusal)
            {
                await FailAsync(operation.Id, vm.Id, ApiException.CodeName(StatusCode.ResourceExhausted), refusal.Message,
                    release: false, cancellationToken, deleted: refusal.OverQuota);
                return;
            }
        }

        await support.ProgressAsync(operation.Id, 60, cancellationToken);
        try
        {
            await agent.CallAsync((c, o) => c.CreateVmAsync(new AgentV1.CreateVmRequest { Spec = specs.For(vm) }, o), cancellationToken);
        }
        catch (RpcException e)
        {
            await FailAsync(operation.Id, vm.Id, ApiException.CodeName(e.StatusCode), $"Node {node.Name} could not create the VM: {e.Status.Detail}", release: true, cancellationToken);
            return;
        }
        await support.FinishAsync(operation.Id, null, null, t => VmHandlerSupport.ExecuteAsync(t,
            "UPDATE vms SET state = 'RUNNING', updated_at = $2 WHERE id = $1 AND state = 'CREATING'", cancellationToken, vm.Id, support.Time.GetUtcNow()), cancellationToken);
    }

    /// <summary>Claims the VM on the snapshot's node, charges the quota and records the node, in one transaction.</summary>
    private async Task<(string Message, bool OverQuota)?> ClaimAsync(VmEntity vm, NodeEntity node, CancellationToken cancellationToken)
    {
        var amounts = new ResourceRequest(vm.Vcpus, vm.MemoryMb, vm.DiskGb).ToAmounts();
        for (var attempt = 0; attempt < 16; attempt++)
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            long generation;
            await using (var read = new NpgsqlCommand("SELECT generation FROM nodes WHERE id = $1", connection, transaction))
            {
                read.Parameters.Add(new NpgsqlParameter { Value = node.Id });
                generation = (long)(await read.ExecuteScalarAsync(cancellationToken))!;
            }
            var claim = await ledger.TryClaimAsync([new Claim(vm.Id, ConsumerKinds.Vm, vm.ProjectId, node.Id, generation, amounts)], transaction, cancellationToken);
            if (!claim.Succeeded)
            {
                if (claim.Conflicts[0].Reason is ClaimConflictReason.InsufficientCapacity or ClaimConflictReason.NodeMissing)
                {
                    return ($"Node {node.Name}, which holds the snapshot, has no room for the VM ({claim.Conflicts[0].Reason}).", false);
                }
                continue;
            }
            if (!await VmRowUpdates.MarkPlacedAsync(transaction, vm.Id, node.Id, support.Time.GetUtcNow(), cancellationToken))
            {
                return ("The VM changed while it was being placed.", false);
            }
            try
            {
                await QuotaLedger.ChargeAsync(transaction, vm.ProjectId, QuotaUsage.ForVm(vm.Vcpus, vm.MemoryMb, vm.DiskGb), cancellationToken);
            }
            catch (QuotaExceededException e)
            {
                return (e.Message, true);
            }
            await transaction.CommitAsync(cancellationToken);
            scheduler.InvalidateAll();
            vm.NodeId = node.Id;
            return null;
        }
        return ($"The claim on node {node.Name} kept losing races; try again.", false);
    }

    /// <summary>
    /// The snapshot's node answered NOT_FOUND: confirmed, the snapshot is LOST and the operation
    /// says so; otherwise the node's answer is the failure.
    /// </summary>
    private async Task FailLostAsync(Guid operationId, Guid vmId, Guid snapshotId, Guid sourceVmId, NodeEntity node, RpcException e, CancellationToken cancellationToken)
    {
        if (!await SnapshotLoss.ConfirmedAsync(agents.For(node.Address), sourceVmId, snapshotId, cancellationToken))
        {
            await FailAsync(operationId, vmId, ApiException.CodeName(e.StatusCode), $"Node {node.Name} could not export the snapshot: {e.Status.Detail}", release: false, cancellationToken);
            return;
        }
        var reason = SnapshotLoss.NotHeldReason(node.Name);
        var message = $"Snapshot {snapshotId} is LOST: {reason}.";
        await support.FinishAsync(operationId, ApiException.CodeName(StatusCode.FailedPrecondition), message, async t =>
        {
            await SnapshotRows.MarkLostAsync(t, snapshotId, node.Id, reason, support.Time.GetUtcNow(), cancellationToken);
            await VmRowUpdates.MarkUnplacedAsync(t, vmId, VmStates.Error, message, support.Time.GetUtcNow(), cancellationToken);
        }, cancellationToken);
    }

    private Task FailAsync(Guid operationId, Guid vmId, string code, string message, bool release, CancellationToken cancellationToken, bool deleted = false)
        => support.FinishAsync(operationId, code, message, async t =>
        {
            if (release)
            {
                await QuotaLedger.ReleaseVmAsync(t, vmId, cancellationToken);
                await scheduler.ReleaseAsync(vmId, null, t, cancellationToken);
            }
            await VmRowUpdates.MarkUnplacedAsync(t, vmId, deleted ? VmStates.Deleted : VmStates.Error, message, support.Time.GetUtcNow(), cancellationToken);
        }, cancellationToken);
}
