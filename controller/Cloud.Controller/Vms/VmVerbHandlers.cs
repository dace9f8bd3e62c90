using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Cloud.Controller.Operations;
using Cloud.Controller.Quotas;
using Cloud.Controller.Scheduling;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Vms;

/// <summary>
/// vm.start, vm.stop and vm.reboot: one agent call, then the state the agent reports. Agent
/// verbs are idempotent, so a resumed operation simply calls again.
/// </summary>
internal sealed class PowerVerbHandler(string kind, VmHandlerSupport support) : IOperationHandler
{
    public string Kind => kind;

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        if (await support.LoadAsync(operation, cancellationToken) is not var (vm, node, agent))
        {
            return;
        }
        var vmRef = new AgentV1.VmRef { VmId = vm.Id.ToString("N") };
        AgentV1.Vm reported;
        try
        {
            reported = kind switch
            {
                OperationKinds.VmStart => await agent.CallAsync((c, o) => c.StartVmAsync(new AgentV1.StartVmRequest { VmId = vmRef.VmId }, o), cancellationToken),
                OperationKinds.VmReboot => await agent.CallAsync((c, o) => c.RebootVmAsync(vmRef, o), cancellationToken),
                _ => await agent.CallAsync((c, o) => c.StopVmAsync(new AgentV1.StopVmRequest
                {
                    VmId = vmRef.VmId,
                    Force = VmHandlerSupport.Input<StopVmRequest>(operation).Force,
                    TimeoutSeconds = 30,
                }, o), cancellationToken),
            };
        }
        catch (RpcException e)
        {
            await support.FailAsync(operation.Id, node, e, null, cancellationToken);
            return;
        }
        await support.FinishAsync(operation.Id, null, null, t => support.SetStateAsync(t, vm.Id, reported.State, cancellationToken), cancellationToken);
    }
}

/// <summary>snapshot.create: the agent snapshots the VM (with its memory when it runs); the row becomes READY.
/// A refusal deletes the row and gives the quota back, with the failure.</summary>
internal sealed class SnapshotCreateHandler(VmHandlerSupport support) : IOperationHandler
{
    public string Kind => OperationKinds.SnapshotCreate;

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        var input = VmHandlerSupport.Input<Snapshot>(operation);
        var snapshotId = Guid.Parse(input.Id);
        if (await support.LoadAsync(operation, cancellationToken) is not var (vm, node, agent))
        {
            await support.FinishAsync(operation.Id, ApiException.CodeName(StatusCode.FailedPrecondition), "The VM went away.",
                t => SnapshotRows.DiscardAsync(t, snapshotId, "The VM went away.", cancellationToken), cancellationToken);
            return;
        }
        AgentV1.Snapshot taken;
        try
        {
            taken = await agent.CallAsync((c, o) => c.CreateSnapshotAsync(new AgentV1.CreateSnapshotRequest
            {
                VmId = vm.Id.ToString("N"),
                SnapshotId = snapshotId.ToString("N"),
                Name = input.Name,
            }, o), cancellationToken);
        }
        catch (RpcException e)
        {
            await support.FailAsync(operation.Id, node, e, t => SnapshotRows.DiscardAsync(t, snapshotId, e.Status.Detail, cancellationToken), cancellationToken);
            return;
        }
        // The node is recorded with READY: from now on the ledger says where the data is.
        await support.FinishAsync(operation.Id, null, null, t => VmHandlerSupport.ExecuteAsync(t,
            "UPDATE snapshots SET state = 'READY', node_id = $5, includes_memory = $2, size_bytes = $3, updated_at = $4 WHERE id = $1 AND state = 'CREATING'",
            cancellationToken, snapshotId, taken.IncludesMemory, taken.SizeBytes, support.Time.GetUtcNow(), node.Id), cancellationToken);
    }
}

/// <summary>snapshot.restore: the agent brings the VM back to the snapshot.</summary>
internal sealed class SnapshotRestoreHandler(VmHandlerSupport support) : IOperationHandler
{
    public string Kind => OperationKinds.SnapshotRestore;

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        var snapshotId = Guid.Parse(VmHandlerSupport.Input<RestoreSnapshotRequest>(operation).Id);
        if (await support.LoadAsync(operation, cancellationToken) is not var (vm, node, agent))
        {
            return;
        }
        AgentV1.Vm reported;
        try
        {
            reported = await agent.CallAsync((c, o) => c.RestoreSnapshotAsync(
                new AgentV1.SnapshotRef { VmId = vm.Id.ToString("N"), SnapshotId = snapshotId.ToString("N") }, o), cancellationToken);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            if (!await SnapshotLoss.ConfirmedAsync(agent, vm.Id, snapshotId, cancellationToken))
            {
                await support.FailAsync(operation.Id, node, e, null, cancellationToken);
                return;
            }
            // The data is gone from the node the ledger records: the snapshot says so from now
            // on, and the operation says why rather than passing the agent's words on.
            var reason = SnapshotLoss.NotHeldReason(node.Name);
            await support.FinishAsync(operation.Id, ApiException.CodeName(StatusCode.FailedPrecondition),
                $"Snapshot {snapshotId} is LOST: {reason}. The VM was left as it was.",
                t => SnapshotRows.MarkLostAsync(t, snapshotId, node.Id, reason, support.Time.GetUtcNow(), cancellationToken), cancellationToken);
            return;
        }
        catch (RpcException e)
        {
            await support.FailAsync(operation.Id, node, e, null, cancellationToken);
            return;
        }
        await support.FinishAsync(operation.Id, null, null, t => support.SetStateAsync(t, vm.Id, reported.State, cancellationToken), cancellationToken);
    }
}

/// <summary>snapshot.delete: the agent drops the snapshot; the row is DELETED and the quota given back together.</summary>
internal sealed class SnapshotDeleteHandler(VmHandlerSupport support) : IOperationHandler
{
    public string Kind => OperationKinds.SnapshotDelete;

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        var snapshotId = Guid.Parse(VmHandlerSupport.Input<DeleteSnapshotRequest>(operation).Id);
        if (await support.LoadAsync(operation, cancellationToken) is not var (vm, node, agent))
        {
            return;
        }
        try
        {
            await agent.CallAsync((c, o) => c.DeleteSnapshotAsync(
                new AgentV1.SnapshotRef { VmId = vm.Id.ToString("N"), SnapshotId = snapshotId.ToString("N") }, o), cancellationToken);
        }
        catch (RpcException e) when (e.StatusCode != StatusCode.NotFound)
        {
            await support.FailAsync(operation.Id, node, e,
                // Back to what it was: a LOST snapshot keeps its reason in error, a READY one has none.
                t => VmHandlerSupport.ExecuteAsync(t,
                    "UPDATE snapshots SET state = CASE WHEN error IS NULL THEN 'READY' ELSE 'LOST' END WHERE id = $1 AND state = 'DELETING'",
                    cancellationToken, snapshotId),
                cancellationToken);
            return;
        }
        await support.FinishAsync(operation.Id, null, null, t => SnapshotRows.DiscardAsync(t, snapshotId, null, cancellationToken), cancellationToken);
    }
}
