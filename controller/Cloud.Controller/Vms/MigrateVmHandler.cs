using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
using Cloud.Controller.Operations;
using Cloud.Controller.Scheduling;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Vms;

/// <summary>
/// vm.migrate (operators): live migration to a named node, or to the node the scheduler chooses
/// when none is named (the VM's own constraints apply, as at its creation; docs/design/007). A
/// stopped VM moves too: started paused for the stream, powered off again where it ends up.
/// The target's capacity is claimed
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
    MigrationTargets targets,
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
        var size = new ResourceRequest(vm.Vcpus, vm.MemoryMb, vm.DiskGb);
        var named = input.Node.Length > 0;
        // A run cut short finds the node it chose by the capacity it claimed there.
        var target = named ? await NodeNamedAsync(input.Node, cancellationToken) : await targets.HeldByAsync(operation.Id, cancellationToken);
        if (named && (target is null || target.Id == source.Id))
        {
            // Already moved (a retry after success committed), or the node went away.
            var code = target?.Id == source.Id ? null : ApiException.CodeName(StatusCode.NotFound);
            await support.FinishAsync(operation.Id, code, code is null ? null : $"Node '{input.Node}' no longer exists.",
                t => scheduler.ReleaseAsync(operation.Id, target?.Id, t, cancellationToken), cancellationToken);
            return;
        }
        if (operation.Recovery == OperationStates.Resumed)
        {
            const string Stopped = "The controller driving the migration stopped; it was rolled back and the VM stays on its node.";
            if (target is null)
            {
                // Stopped before a node was chosen and claimed: nothing moved.
                await support.FinishAsync(operation.Id, ApiException.CodeName(StatusCode.Aborted), Stopped,
                    t => VmHandlerSupport.MarkRolledBackAsync(t, operation.Id, cancellationToken), cancellationToken);
                return;
            }
            await RollBackAsync(operation.Id, vm, sourceAgent, agents.For(target), target.Id, Stopped, recovered: true, cancellationToken);
            return;
        }

        if (target is null)
        {
            var choice = await targets.ChooseAndClaimAsync(operation.Id, vm, source, size, null, cancellationToken);
            if (choice.Node is null)
            {
                await support.FinishAsync(operation.Id, ApiException.CodeName(choice.Code), $"No node to migrate the VM to. {choice.Failure}", null, cancellationToken);
                return;
            }
            target = choice.Node;
            Log.TargetChosen(logger, vm.Id, source.Name, target.Name);
        }
        else if (await migration.ClaimTargetAsync(operation.Id, vm.ProjectId, target, size, null, cancellationToken) is { Claimed: false } refused)
        {
            await support.FinishAsync(operation.Id, ApiException.CodeName(StatusCode.ResourceExhausted), refused.Refusal, null, cancellationToken);
            return;
        }
        var targetAgent = agents.For(target);
        await support.ProgressAsync(operation.Id, 10, cancellationToken);

        var wasStopped = vm.State == VmStates.Stopped;
        Cloud.Contracts.Agent.V1.VmState arrived;
        try
        {
            if (wasStopped)
            {
                await migration.StartPausedForMoveAsync(vm, source, sourceAgent, cancellationToken);
            }
            arrived = await migration.MoveAsync(operation.Id, vm, source, sourceAgent, target, targetAgent, 20, 95, cancellationToken);
        }
        catch (RpcException e)
        {
            Log.MigrationFailed(logger, vm.Id, source.Name, target.Name, e.Status.Detail);
            await RollBackAsync(operation.Id, vm, sourceAgent, targetAgent, target.Id,
                $"Migration to {target.Name} failed: {e.Status.Detail}", recovered: false, cancellationToken, ApiException.CodeName(e.StatusCode));
            return;
        }

        string? powerOffCode = null;
        string? powerOffFailure = null;
        if (wasStopped)
        {
            try
            {
                arrived = (await LiveMigration.PowerOffAsync(targetAgent, vm.Id, cancellationToken)).State;
            }
            catch (RpcException e)
            {
                // It is on the target, paused: landed there, and the operation says so.
                powerOffCode = ApiException.CodeName(e.StatusCode);
                powerOffFailure = $"The VM moved to node {target.Name}, which then failed to power it off: {e.Status.Detail}. It is there, paused.";
            }
        }
        await support.FinishAsync(operation.Id, powerOffCode, powerOffFailure, async t =>
        {
            await migration.LandAsync(t, operation.Id, vm, target, size, cancellationToken);
            await support.SetStateAsync(t, vm.Id, arrived, cancellationToken);
        }, cancellationToken);
    }

    private async Task<NodeEntity?> NodeNamedAsync(string name, CancellationToken cancellationToken)
    {
        await using var db = await support.Contexts.CreateDbContextAsync(cancellationToken);
        return await db.Nodes.AsNoTracking().SingleOrDefaultAsync(n => n.Name == name, cancellationToken);
    }

    /// <summary>Both sides aborted, the target's claim released; a VM that was stopped is powered off on its node again.</summary>
    private async Task RollBackAsync(Guid operationId, VmEntity vm, AgentConnection sourceAgent, AgentConnection targetAgent, Guid targetId,
        string message, bool recovered, CancellationToken cancellationToken, string? code = null)
    {
        await migration.AbortAsync(operationId, vm.Id, sourceAgent, targetAgent, cancellationToken);
        if (vm.State == VmStates.Stopped)
        {
            try
            {
                await LiveMigration.PowerOffAsync(sourceAgent, vm.Id, cancellationToken);
            }
            catch (RpcException e)
            {
                Log.PowerOffFailed(logger, vm.Id, e.Status.Detail);
            }
        }
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

        [LoggerMessage(EventId = 3105, Level = LogLevel.Warning, Message = "VM {VmId} was stopped before its migration failed, and powering it off on its node again failed: {Detail}")]
        public static partial void PowerOffFailed(ILogger logger, Guid vmId, string detail);

        [LoggerMessage(EventId = 3104, Level = LogLevel.Information, Message = "VM {VmId} migrates from {Source} to {Target}, chosen by the scheduler")]
        public static partial void TargetChosen(ILogger logger, Guid vmId, string source, string target);
    }
}
