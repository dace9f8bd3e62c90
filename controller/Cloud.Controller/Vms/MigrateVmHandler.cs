using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
using Cloud.Controller.Operations;
using Cloud.Controller.Scheduling;
using Cloud.Contracts.Compute.V1;
using Cloud.Grpc;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Vms;

/// <summary>
/// vm.migrate (operators): live migration to a named node. The target's capacity is claimed
/// first by a migration consumer (the operation's id), so nothing else can take it meanwhile;
/// the target agent prepares an incoming VM, the source agent streams it, and the operation's
/// progress follows the bytes moved. On success one transaction releases both claims, claims
/// the VM on the target and moves the VM's row. A failure aborts both sides and releases the
/// target claim. A migration whose controller stopped mid-way is rolled back, not resumed: the
/// stream that drove it is gone, and the source still runs the guest.
/// </summary>
internal sealed partial class MigrateVmHandler(
    VmHandlerSupport support,
    Scheduler scheduler,
    LiveMigration migration,
    AgentConnections agents,
    ILogger<MigrateVmHandler> logger) : IOperationHandler
{
    public string Kind => OperationKinds.VmMigrate;

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        if (await support.LoadAsync(operation, cancellationToken) is not var (vm, source, sourceAgent))
        {
            return;
        }
        var input = VmHandlerSupport.Input<MigrateVmRequest>(operation);
        NodeEntity? target;
        await using (var db = await support.Contexts.CreateDbContextAsync(cancellationToken))
        {
            target = await db.Nodes.AsNoTracking().SingleOrDefaultAsync(n => n.Name == input.Node, cancellationToken);
        }
        if (target is null || target.Id == source.Id)
        {
            // Already moved (a retry after success committed), or the node went away.
            var code = target?.Id == source.Id ? null : ApiException.CodeName(StatusCode.NotFound);
            await support.FinishAsync(operation.Id, code, code is null ? null : $"Node '{input.Node}' no longer exists.",
                t => scheduler.ReleaseAsync(operation.Id, target?.Id, t, cancellationToken), cancellationToken);
            return;
        }
        var targetAgent = agents.For(target.Address);
        if (operation.Recovery == OperationStates.Resumed)
        {
            await RollBackAsync(operation.Id, vm.Id, sourceAgent, targetAgent, target.Id,
                "The controller driving the migration stopped; it was rolled back and the VM stays on its node.", recovered: true, cancellationToken);
            return;
        }

        var size = new ResourceRequest(vm.Vcpus, vm.MemoryMb, vm.DiskGb);
        if (await migration.ClaimTargetAsync(operation.Id, vm.ProjectId, target, size, null, cancellationToken) is { Claimed: false } refused)
        {
            await support.FinishAsync(operation.Id, ApiException.CodeName(StatusCode.ResourceExhausted), refused.Refusal, null, cancellationToken);
            return;
        }
        await support.ProgressAsync(operation.Id, 10, cancellationToken);

        Cloud.Contracts.Agent.V1.VmState arrived;
        try
        {
            arrived = await migration.MoveAsync(operation.Id, vm, sourceAgent, target.Id, targetAgent, 20, 95, cancellationToken);
        }
        catch (RpcException e)
        {
            Log.MigrationFailed(logger, vm.Id, source.Name, target.Name, e.Status.Detail);
            await RollBackAsync(operation.Id, vm.Id, sourceAgent, targetAgent, target.Id,
                $"Migration to {target.Name} failed: {e.Status.Detail}", recovered: false, cancellationToken, ApiException.CodeName(e.StatusCode));
            return;
        }

        await support.FinishAsync(operation.Id, null, null, async t =>
        {
            await migration.LandAsync(t, operation.Id, vm, target, size, cancellationToken);
            await support.SetStateAsync(t, vm.Id, arrived, cancellationToken);
        }, cancellationToken);
    }

    private async Task RollBackAsync(Guid operationId, Guid vmId, AgentConnection sourceAgent, AgentConnection targetAgent, Guid targetId,
        string message, bool recovered, CancellationToken cancellationToken, string? code = null)
    {
        await migration.AbortAsync(operationId, vmId, sourceAgent, targetAgent, cancellationToken);
        await support.FinishAsync(operationId, code ?? ApiException.CodeName(StatusCode.Aborted), message, async t =>
        {
            await scheduler.ReleaseAsync(operationId, targetId, t, cancellationToken);
            if (recovered)
            {
                await VmHandlerSupport.MarkRolledBackAsync(t, operationId, cancellationToken);
            }
        }, cancellationToken);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3101, Level = LogLevel.Warning, Message = "Migration of VM {VmId} from {Source} to {Target} failed: {Detail}")]
        public static partial void MigrationFailed(ILogger logger, Guid vmId, string source, string target, string detail);
    }
}
