using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
using Cloud.Controller.Operations;
using Cloud.Controller.Quotas;
using Cloud.Controller.Scheduling;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Vms;

/// <summary>
/// vm.delete: the agent removes the guest, then the claim is released and the VM marked
/// DELETED in one transaction. Capacity is only returned once the node no longer runs the guest.
/// </summary>
internal sealed class DeleteVmHandler(
    IDbContextFactory<LedgerDbContext> contexts,
    NpgsqlDataSource dataSource,
    Scheduler scheduler,
    AgentConnections agents,
    TimeProvider time) : IOperationHandler
{
    public string Kind => OperationKinds.VmDelete;

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        var vmId = Guid.Parse(operation.TargetId);
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var vm = await db.Vms.AsNoTracking().SingleAsync(v => v.Id == vmId, cancellationToken);
        await OperationUpdates.ProgressAsync(db, operation.Id, 20, time, cancellationToken);

        if (vm.NodeId is { } nodeId)
        {
            var node = await db.Nodes.AsNoTracking().SingleAsync(n => n.Id == nodeId, cancellationToken);
            try
            {
                await agents.For(node).CallAsync(
                    (client, options) => client.DeleteVmAsync(new AgentV1.VmRef { VmId = vm.Id.ToString("N") }, options), cancellationToken);
            }
            catch (RpcException e) when (e.StatusCode != StatusCode.NotFound)
            {
                // The guest may still run: keep the claim, so the capacity is not handed out twice.
                await OperationUpdates.FailAsync(contexts, operation.Id, ApiException.CodeName(e.StatusCode),
                    $"Node {node.Name} could not delete the VM: {e.Status.Detail}. The VM stays DELETING; delete it again.", time, cancellationToken);
                return;
            }
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var now = time.GetUtcNow();
        await QuotaLedger.ReleaseVmAsync(transaction, vm.Id, cancellationToken);
        await SnapshotRows.DiscardAllOfVmAsync(transaction, vm.Id, cancellationToken);
        await scheduler.ReleaseAsync(vm.Id, vm.NodeId, transaction, cancellationToken);
        await VmRowUpdates.MarkUnplacedAsync(transaction, vm.Id, VmStates.Deleted, null, now, cancellationToken);
        await VmRowUpdates.FinishOperationAsync(transaction, operation.Id, null, null, now, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }
}
