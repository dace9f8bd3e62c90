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
/// vm.create: place and claim, then ask the node's agent to create and start the guest.
/// Resumable: a VM already placed is not placed again, and the agent's create is idempotent.
/// If the agent refuses, the claim is released in the same transaction that fails the operation.
/// </summary>
internal sealed class CreateVmHandler(
    IDbContextFactory<LedgerDbContext> contexts,
    NpgsqlDataSource dataSource,
    Scheduler scheduler,
    AgentVmCreation creation,
    TimeProvider time) : IOperationHandler
{
    public string Kind => OperationKinds.VmCreate;

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        var vmId = Guid.Parse(operation.TargetId);
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var vm = await db.Vms.AsNoTracking().SingleAsync(v => v.Id == vmId, cancellationToken);
        if (vm.State is VmStates.Deleting or VmStates.Deleted)
        {
            await OperationUpdates.FailAsync(contexts, operation.Id, ApiException.CodeName(StatusCode.Aborted), "The VM was deleted before it was created.", time, cancellationToken);
            return;
        }

        if (vm.NodeId is null)
        {
            await OperationUpdates.ProgressAsync(db, operation.Id, 10, time, cancellationToken);
            if (!PlacementHints.TryParse(vm.Labels, out var constraints, out var hintError))
            {
                await FailUnplacedAsync(operation.Id, vm.Id, ApiException.CodeName(StatusCode.InvalidArgument), hintError!, release: false, cancellationToken);
                return;
            }
            var request = new PlacementRequest(new ResourceRequest(vm.Vcpus, vm.MemoryMb, vm.DiskGb), constraints);
            // A VM the quota already rules out does not compete for capacity; the charge below decides.
            if (await QuotaLedger.ExcessAsync(db, vm.ProjectId, QuotaUsage.ForVm(vm.Vcpus, vm.MemoryMb, vm.DiskGb), cancellationToken) is { } excess)
            {
                await FailOverQuotaAsync(operation.Id, vm.Id, excess, cancellationToken);
                return;
            }
            PlacementResult placement;
            try
            {
                placement = await scheduler.PlaceAsync(vm.Id, vm.ProjectId, request,
                    async (transaction, node, ct) =>
                    {
                        if (!await VmRowUpdates.MarkPlacedAsync(transaction, vm.Id, node.NodeId, time.GetUtcNow(), ct))
                        {
                            throw new InvalidOperationException($"VM {vm.Id} changed while it was being placed.");
                        }
                        // The quota is charged in the claim's transaction: a refusal throws and the claim rolls back with it.
                        await QuotaLedger.ChargeAsync(transaction, vm.ProjectId, QuotaUsage.ForVm(vm.Vcpus, vm.MemoryMb, vm.DiskGb), ct);
                    },
                    cancellationToken);
            }
            catch (QuotaExceededException e)
            {
                await FailOverQuotaAsync(operation.Id, vm.Id, e.Message, cancellationToken);
                return;
            }
            if (!placement.Placed)
            {
                await FailUnplacedAsync(operation.Id, vm.Id, ApiException.CodeName(StatusCode.ResourceExhausted), placement.Failure!.Summary, release: false, cancellationToken);
                return;
            }
            vm = await db.Vms.AsNoTracking().SingleAsync(v => v.Id == vmId, cancellationToken);
        }

        var nodeRow = await db.Nodes.AsNoTracking().SingleAsync(n => n.Id == vm.NodeId, cancellationToken);
        await OperationUpdates.ProgressAsync(db, operation.Id, 50, time, cancellationToken);
        if (await creation.CreateAsync(vm, nodeRow, withImage: true, cancellationToken) is { } refusal)
        {
            await FailUnplacedAsync(operation.Id, vm.Id, ApiException.CodeName(refusal.Code), refusal.Message, release: true, cancellationToken);
            return;
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var now = time.GetUtcNow();
        await VmRowUpdates.MarkRunningAsync(transaction, [vm.Id], now, cancellationToken);
        await VmRowUpdates.FinishOperationAsync(transaction, operation.Id, null, null, now, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    private async Task FailUnplacedAsync(Guid operationId, Guid vmId, string code, string message, bool release, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var now = time.GetUtcNow();
        if (release)
        {
            await creation.ReleaseAsync(transaction, vmId, message, now, cancellationToken);
        }
        else
        {
            await VmRowUpdates.MarkUnplacedAsync(transaction, vmId, VmStates.Error, message, now, cancellationToken);
        }
        await VmRowUpdates.FinishOperationAsync(transaction, operationId, code, message, now, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>A VM the quota refused never existed anywhere: it is DELETED, the operation says why.</summary>
    private async Task FailOverQuotaAsync(Guid operationId, Guid vmId, string message, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var now = time.GetUtcNow();
        await VmRowUpdates.MarkUnplacedAsync(transaction, vmId, VmStates.Deleted, message, now, cancellationToken);
        await VmRowUpdates.FinishOperationAsync(transaction, operationId, ApiException.CodeName(StatusCode.ResourceExhausted), message, now, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }
}
