using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
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
/// vm.resize. In place when the new flavor fits on the VM's node: the claim is swapped for the
/// new flavor's and the quota charged the difference in one transaction, then the agent resizes
/// (live when the guest allows it, otherwise with a restart); an agent refusal swaps back.
/// When it does not fit, the VM moves (docs/design/007): another node is chosen for the new
/// flavor with the VM's own constraints, the new size is claimed there by a migration consumer
/// (the operation's id) with the quota difference while the source keeps the VM's claim, the VM
/// is live-migrated in its old shape and then resized on the destination, and one transaction
/// leaves only the VM's new claim on the destination. A failure before the VM arrived rolls back
/// (both agents aborted, the destination claim and the quota difference given back).
/// </summary>
internal sealed partial class ResizeVmHandler(
    VmHandlerSupport support,
    NpgsqlDataSource dataSource,
    Scheduler scheduler,
    CapacityLedger ledger,
    LiveMigration migration,
    MigrationTargets targets,
    AgentConnections agents,
    ILogger<ResizeVmHandler> logger) : IOperationHandler
{
    public string Kind => OperationKinds.VmResize;

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        if (await support.LoadAsync(operation, cancellationToken) is not var (vm, node, agent))
        {
            return;
        }
        var input = VmHandlerSupport.Input<ResizeVmRequest>(operation);
        FlavorEntity? flavor;
        await using (var db = await support.Contexts.CreateDbContextAsync(cancellationToken))
        {
            flavor = await db.Flavors.AsNoTracking().SingleOrDefaultAsync(f => f.Name == input.Flavor, cancellationToken);
        }
        var old = new ResourceRequest(vm.Vcpus, vm.MemoryMb, vm.DiskGb);
        if (await HeldByMoveAsync(operation.Id, cancellationToken) is var (destinationId, claimed))
        {
            // A previous run of this operation began to move the VM and its controller stopped.
            // The size is the one it claimed (and charged), whatever became of the flavor since.
            await ResumeMoveAsync(new Move(operation.Id, vm, node, agent, input.Flavor, old, claimed), destinationId, cancellationToken);
            return;
        }
        if (flavor is null)
        {
            await support.FinishAsync(operation.Id, ApiException.CodeName(StatusCode.NotFound), $"Flavor '{input.Flavor}' no longer exists.", null, cancellationToken);
            return;
        }

        var target = new ResourceRequest(flavor.Vcpus, flavor.MemoryMb, flavor.DiskGb);
        // A resumed resize whose claim already committed goes straight to the agent.
        var reclaimedHere = vm.FlavorName != flavor.Name;
        if (reclaimedHere)
        {
            var (refusal, noRoom) = await ReclaimAsync(vm, node, (vm.FlavorName, old), (flavor.Name, target), cancellationToken);
            if (noRoom)
            {
                await MoveAsync(new Move(operation.Id, vm, node, agent, flavor.Name, old, target), refusal!, cancellationToken);
                return;
            }
            if (refusal is not null)
            {
                await support.FinishAsync(operation.Id, ApiException.CodeName(StatusCode.ResourceExhausted), refusal, null, cancellationToken);
                return;
            }
        }
        await support.ProgressAsync(operation.Id, 50, cancellationToken);

        AgentV1.Vm reported;
        try
        {
            reported = await agent.CallAsync((c, o) => c.ResizeVmAsync(ResizeRequest(vm.Id, target), o), cancellationToken);
        }
        catch (RpcException e)
        {
            if (reclaimedHere)
            {
                await ReclaimAsync(vm, node, (flavor.Name, target), (vm.FlavorName, old), cancellationToken);
            }
            await support.FailAsync(operation.Id, node, e, null, cancellationToken);
            return;
        }
        await support.FinishAsync(operation.Id, null, null, t => support.SetStateAsync(t, vm.Id, reported.State, cancellationToken), cancellationToken);
    }

    /// <summary>A VM's move for a resize: the VM as it was, its source, and the two sizes.</summary>
    private sealed record Move(Guid OperationId, VmEntity Vm, NodeEntity Source, AgentConnection SourceAgent, string Flavor, ResourceRequest Old, ResourceRequest Target)
    {
        /// <summary>The row keeps the state from before the move: a stopped VM moves and stays stopped.</summary>
        public bool WasStopped => Vm.State == VmStates.Stopped;

        /// <summary>What the tenant's usage changes by.</summary>
        public QuotaUsage Delta => new(0, Target.Vcpus - Old.Vcpus, Target.MemoryMb - Old.MemoryMb, Target.DiskGb - Old.DiskGb, 0);
    }


    private static AgentV1.ResizeVmRequest ResizeRequest(Guid vmId, ResourceRequest size) => new()
    {
        VmId = vmId.ToString("N"),
        Shape = new AgentV1.VmShape { Vcpus = size.Vcpus, MemoryMb = size.MemoryMb, DiskGb = size.DiskGb },
        AllowCold = true,
    };

    private async Task MoveAsync(Move move, string whyNotHere, CancellationToken cancellationToken)
    {
        var (operationId, vm, source, _, _, _, target) = move;
        await support.ProgressAsync(operationId, 25, cancellationToken);
        var choice = await targets.ChooseAndClaimAsync(operationId, vm, source, target,
            t => QuotaLedger.ChargeAsync(t, vm.ProjectId, move.Delta, cancellationToken), cancellationToken);
        if (choice.Node is not { } destination)
        {
            await FailMoveAsync(move, choice.Code, $"{whyNotHere} {choice.Failure}", cancellationToken);
            return;
        }
        Log.Moving(logger, vm.Id, source.Name, destination.Name, move.Flavor);
        await support.ProgressAsync(operationId, 30, cancellationToken);

        var destinationAgent = agents.For(destination);
        try
        {
            if (move.WasStopped)
            {
                await migration.StartPausedForMoveAsync(vm, source, move.SourceAgent, cancellationToken);
            }
            await migration.MoveAsync(operationId, vm, source, move.SourceAgent, destination, destinationAgent, 35, 85, cancellationToken);
        }
        catch (RpcException e)
        {
            Log.MoveFailed(logger, vm.Id, source.Name, destination.Name, e.Status.Detail);
            await SettleFailedMoveAsync(move, destination, destinationAgent, ApiException.CodeName(e.StatusCode),
                $"Moving the VM to node {destination.Name} for flavor '{move.Flavor}' failed: {e.Status.Detail}", cancellationToken);
            return;
        }
        await FinishMoveAsync(move, destination, destinationAgent, cancellationToken);
    }

    /// <summary>
    /// The VM runs on the destination in its old shape: gives it the new one there (live if it
    /// can, else with a restart; a VM that was stopped is stopped first), and lands the claims.
    /// If the destination refuses the new shape, the VM stays there in its old one: the move
    /// cannot be undone without another migration, and the operation fails saying so.
    /// </summary>
    private async Task FinishMoveAsync(Move move, NodeEntity destination, AgentConnection destinationAgent, CancellationToken cancellationToken)
    {
        var vmId = move.Vm.Id;
        await support.ProgressAsync(move.OperationId, 90, cancellationToken);
        AgentV1.Vm reported;
        try
        {
            if (move.WasStopped)
            {
                await LiveMigration.PowerOffAsync(destinationAgent, vmId, cancellationToken);
            }
            reported = await destinationAgent.CallAsync((c, o) => c.ResizeVmAsync(ResizeRequest(vmId, move.Target), o), cancellationToken);
        }
        catch (RpcException e)
        {
            await support.FinishAsync(move.OperationId, ApiException.CodeName(e.StatusCode),
                $"The VM moved to node {destination.Name}, which then refused flavor '{move.Flavor}': {e.Status.Detail}. It runs there with its old flavor '{move.Vm.FlavorName}'.",
                async t =>
                {
                    await migration.LandAsync(t, move.OperationId, move.Vm, destination, move.Old, cancellationToken);
                    await QuotaLedger.ReleaseAsync(t, move.Vm.ProjectId, move.Delta, cancellationToken);
                }, cancellationToken);
            return;
        }
        await support.FinishAsync(move.OperationId, null, null, async t =>
        {
            await migration.LandAsync(t, move.OperationId, move.Vm, destination, move.Target, cancellationToken);
            await VmHandlerSupport.ExecuteAsync(t, "UPDATE vms SET flavor_name = $2, vcpus = $3, memory_mb = $4, disk_gb = $5, updated_at = $6 WHERE id = $1",
                cancellationToken, vmId, move.Flavor, move.Target.Vcpus, move.Target.MemoryMb, move.Target.DiskGb, support.Time.GetUtcNow());
            await support.SetStateAsync(t, vmId, reported.State, cancellationToken);
        }, cancellationToken);
        Log.Moved(logger, vmId, destination.Name, move.Flavor);
    }

    /// <summary>A move refused before anything was claimed or started: the VM is as it was.</summary>
    private Task FailMoveAsync(Move move, StatusCode code, string message, CancellationToken cancellationToken)
        => support.FinishAsync(move.OperationId, ApiException.CodeName(code), $"{message} Rolled back: {Unchanged(move)}",
            t => VmHandlerSupport.MarkRolledBackAsync(t, move.OperationId, cancellationToken), cancellationToken);

    private static string Unchanged(Move move) => $"the VM stays on node {move.Source.Name} with flavor '{move.Vm.FlavorName}'.";

    /// <summary>
    /// After a failed move, or when a controller took over a move another one left mid-way:
    /// both agents are told to abort. If the source still has the guest, the move is undone (the
    /// guest resumes there, and is powered off again if it was stopped; the destination's claim
    /// and the quota difference are released, once). If the source already handed the guest over,
    /// there is nothing to undo: the move goes on from the destination.
    /// </summary>
    private async Task SettleFailedMoveAsync(Move move, NodeEntity destination, AgentConnection destinationAgent, string code, string message, CancellationToken cancellationToken)
    {
        var vmRef = move.Vm.Id.ToString("N");
        await migration.AbortAsync(move.OperationId, move.Vm.Id, move.SourceAgent, destinationAgent, cancellationToken);
        if (await StateOrUnknownAsync(move.SourceAgent, vmRef, cancellationToken) is AgentV1.VmState.Unspecified
            && await StateOrUnknownAsync(destinationAgent, vmRef, cancellationToken) is not (AgentV1.VmState.Unspecified or AgentV1.VmState.Incoming))
        {
            await FinishMoveAsync(move, destination, destinationAgent, cancellationToken);
            return;
        }
        if (move.WasStopped)
        {
            try
            {
                await LiveMigration.PowerOffAsync(move.SourceAgent, move.Vm.Id, cancellationToken);
            }
            catch (RpcException e)
            {
                Log.MoveFailed(logger, move.Vm.Id, move.Source.Name, destination.Name, "stopping it again on its node: " + e.Status.Detail);
            }
        }
        await support.FinishAsync(move.OperationId, code, $"{message}. Rolled back: {Unchanged(move)}", async t =>
        {
            if (await LiveMigration.HeldOnAsync(t, move.OperationId, cancellationToken) is not null)
            {
                await scheduler.ReleaseAsync(move.OperationId, destination.Id, t, cancellationToken);
                await QuotaLedger.ReleaseAsync(t, move.Vm.ProjectId, move.Delta, cancellationToken);
            }
            await VmHandlerSupport.MarkRolledBackAsync(t, move.OperationId, cancellationToken);
        }, cancellationToken);
    }

    /// <summary>A controller stopped in the middle of a move: it is settled from what the agents hold now.</summary>
    private async Task ResumeMoveAsync(Move move, Guid destinationId, CancellationToken cancellationToken)
    {
        NodeEntity destination;
        await using (var db = await support.Contexts.CreateDbContextAsync(cancellationToken))
        {
            destination = await db.Nodes.AsNoTracking().SingleAsync(n => n.Id == destinationId, cancellationToken);
        }
        await SettleFailedMoveAsync(move, destination, agents.For(destination), ApiException.CodeName(StatusCode.Aborted),
            $"The controller moving the VM to node {destination.Name} for flavor '{move.Flavor}' stopped mid-way", cancellationToken);
    }

    /// <summary>The state an agent reports for the VM; Unspecified when it has no such VM, null when it does not answer.</summary>
    private static async Task<AgentV1.VmState?> StateOrUnknownAsync(AgentConnection agent, string vmRef, CancellationToken cancellationToken)
    {
        try
        {
            return await LiveMigration.StateOnAsync(agent, vmRef, cancellationToken);
        }
        catch (RpcException)
        {
            return null;
        }
    }

    /// <summary>The node and size a move of this operation claimed (its migration consumer's allocations), or null.</summary>
    private async Task<(Guid Node, ResourceRequest Size)?> HeldByMoveAsync(Guid operationId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT node_id, resource_class, used FROM allocations WHERE consumer_id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = operationId });
        Guid? node = null;
        var amounts = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            node = reader.GetGuid(0);
            amounts[reader.GetString(1)] = reader.GetInt64(2);
        }
        return node is { } id
            ? (id, new ResourceRequest((int)amounts.GetValueOrDefault(ResourceClasses.Vcpu), amounts.GetValueOrDefault(ResourceClasses.MemoryMb), amounts.GetValueOrDefault(ResourceClasses.DiskGb)))
            : null;
    }

    /// <summary>
    /// Moves the VM's row, claim and quota charge from one size to another on its node. Answers
    /// the refusal (or null), and whether it was for lack of room on the node (then nothing changed).
    /// </summary>
    private async Task<(string? Refusal, bool NoRoom)> ReclaimAsync(VmEntity vm, NodeEntity node, (string Flavor, ResourceRequest Size) from, (string Flavor, ResourceRequest Size) to, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // Only from the size the row still has: a second run finds it moved already.
        var moved = await VmHandlerSupport.ExecuteAsync(transaction,
            "UPDATE vms SET flavor_name = $2, vcpus = $3, memory_mb = $4, disk_gb = $5, updated_at = $6 WHERE id = $1 AND flavor_name = $7 AND node_id = $8",
            cancellationToken, vm.Id, to.Flavor, to.Size.Vcpus, to.Size.MemoryMb, to.Size.DiskGb, support.Time.GetUtcNow(), from.Flavor, node.Id);
        if (moved == 0)
        {
            return (null, false);
        }
        await scheduler.ReleaseAsync(vm.Id, node.Id, transaction, cancellationToken);
        var generation = await LiveMigration.GenerationAsync(transaction, node.Id, cancellationToken);
        var claim = await ledger.TryClaimAsync([new Claim(vm.Id, ConsumerKinds.Vm, vm.ProjectId, node.Id, generation, to.Size.ToAmounts())], transaction, cancellationToken);
        if (!claim.Succeeded)
        {
            await transaction.RollbackAsync(cancellationToken);
            return ($"Flavor '{to.Flavor}' does not fit on node {node.Name} ({claim.Conflicts[0].Reason}).", claim.Conflicts[0].Reason == ClaimConflictReason.InsufficientCapacity);
        }
        try
        {
            await QuotaLedger.ChargeAsync(transaction, vm.ProjectId,
                new QuotaUsage(0, to.Size.Vcpus - from.Size.Vcpus, to.Size.MemoryMb - from.Size.MemoryMb, to.Size.DiskGb - from.Size.DiskGb, 0), cancellationToken);
        }
        catch (QuotaExceededException e)
        {
            await transaction.RollbackAsync(cancellationToken);
            return (e.Message, false);
        }
        await transaction.CommitAsync(cancellationToken);
        return (null, false);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3111, Level = LogLevel.Information, Message = "VM {VmId} does not fit on {Source} with flavor {Flavor}: moving it to {Destination}")]
        public static partial void Moving(ILogger logger, Guid vmId, string source, string destination, string flavor);

        [LoggerMessage(EventId = 3112, Level = LogLevel.Warning, Message = "Moving VM {VmId} from {Source} to {Destination} for a resize failed: {Detail}")]
        public static partial void MoveFailed(ILogger logger, Guid vmId, string source, string destination, string detail);

        [LoggerMessage(EventId = 3113, Level = LogLevel.Information, Message = "VM {VmId} moved to {Destination} with flavor {Flavor}")]
        public static partial void Moved(ILogger logger, Guid vmId, string destination, string flavor);
    }
}
