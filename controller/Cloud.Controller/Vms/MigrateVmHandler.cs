using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
using Cloud.Controller.Operations;
using Cloud.Controller.Scheduling;
using Cloud.Contracts.Compute.V1;
using Cloud.Grpc;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using AgentV1 = Cloud.Contracts.Agent.V1;
using Phase = Cloud.Contracts.Agent.V1.MigrationProgress.Types.Phase;

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
    NpgsqlDataSource dataSource,
    Scheduler scheduler,
    CapacityLedger ledger,
    AgentConnections agents,
    Images.ImageDistribution images,
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
        var migrationId = operation.Id.ToString("N");
        var vmRef = vm.Id.ToString("N");
        var targetAgent = agents.For(target.Address);
        if (operation.Recovery == OperationStates.Resumed)
        {
            await RollBackAsync(operation.Id, vmRef, migrationId, sourceAgent, targetAgent, target.Id,
                "The controller driving the migration stopped; it was rolled back and the VM stays on its node.", recovered: true, cancellationToken);
            return;
        }

        if (await ClaimTargetAsync(operation, vm, target, cancellationToken) is { } refusal)
        {
            await support.FinishAsync(operation.Id, ApiException.CodeName(StatusCode.ResourceExhausted), refusal, null, cancellationToken);
            return;
        }
        await support.ProgressAsync(operation.Id, 10, cancellationToken);

        AgentV1.VmState arrived;
        try
        {
            // The target's overlay needs the same base image the source's has.
            await images.EnsureOnNodeAsync(vm.ImageId, targetAgent, cancellationToken);
            var prepared = await targetAgent.CallAsync(
                (c, o) => c.PrepareMigrationAsync(new AgentV1.PrepareMigrationRequest { Spec = CreateVmHandler.ToSpec(vm), MigrationId = migrationId }, o),
                cancellationToken);
            await support.ProgressAsync(operation.Id, 20, cancellationToken);
            using var call = sourceAgent.Client.Migrate(new AgentV1.MigrateRequest
            {
                VmId = vmRef,
                MigrationId = migrationId,
                MigrationUri = prepared.MigrationUri,
                DiskUri = prepared.DiskUri,
            }, new CallOptions(CancellationToken: cancellationToken));
            AgentV1.MigrationProgress? last = null;
            var reported = 20;
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                last = call.ResponseStream.Current;
                var done = last.TotalBytes > 0 ? (int)Math.Clamp(20 + (75 * last.TransferredBytes / last.TotalBytes), 20, 95) : reported;
                if (done > reported)
                {
                    reported = done;
                    await support.ProgressAsync(operation.Id, done, cancellationToken);
                }
            }
            if (last?.Phase != Phase.Completed)
            {
                throw new RpcException(StatusCode.Aborted, $"The migration ended {last?.Phase.ToString() ?? "without a word"}: {last?.Error}");
            }
            arrived = await WaitForArrivalAsync(targetAgent, vmRef, cancellationToken);
        }
        catch (RpcException e)
        {
            Log.MigrationFailed(logger, vm.Id, source.Name, target.Name, e.Status.Detail);
            await RollBackAsync(operation.Id, vmRef, migrationId, sourceAgent, targetAgent, target.Id,
                $"Migration to {target.Name} failed: {e.Status.Detail}", recovered: false, cancellationToken, ApiException.CodeName(e.StatusCode));
            return;
        }

        await support.FinishAsync(operation.Id, null, null, async t =>
        {
            await scheduler.ReleaseAsync(operation.Id, target.Id, t, cancellationToken);
            await scheduler.ReleaseAsync(vm.Id, source.Id, t, cancellationToken);
            var claim = await ledger.TryClaimAsync(
                [new Claim(vm.Id, ConsumerKinds.Vm, vm.ProjectId, target.Id, await GenerationAsync(t, target.Id, cancellationToken), new ResourceRequest(vm.Vcpus, vm.MemoryMb, vm.DiskGb).ToAmounts())],
                t, cancellationToken);
            if (!claim.Succeeded)
            {
                // The migration consumer held exactly this capacity a statement ago, in this transaction.
                throw new InvalidOperationException($"The VM's claim on {target.Name} was refused after its migration: {claim.Conflicts[0].Reason}.");
            }
            await VmHandlerSupport.ExecuteAsync(t, "UPDATE vms SET node_id = $2, updated_at = $3 WHERE id = $1",
                cancellationToken, vm.Id, target.Id, support.Time.GetUtcNow());
            await support.SetStateAsync(t, vm.Id, arrived, cancellationToken);
        }, cancellationToken);
    }

    /// <summary>
    /// The source's stream ends when it handed the guest over; the target resumes it on its own
    /// event a moment later. Waits (polling, with a deadline) until the target runs it, and
    /// answers the state the target reports then.
    /// </summary>
    private async Task<AgentV1.VmState> WaitForArrivalAsync(AgentConnection target, string vmRef, CancellationToken cancellationToken)
    {
        var deadline = support.Time.GetUtcNow() + TimeSpan.FromSeconds(60);
        while (true)
        {
            var vms = await target.CallAsync((c, o) => c.ListVmsAsync(new AgentV1.ListVmsRequest(), o), cancellationToken);
            var state = vms.Vms.FirstOrDefault(v => v.VmId == vmRef)?.State ?? AgentV1.VmState.Unspecified;
            if (state is not (AgentV1.VmState.Incoming or AgentV1.VmState.Unspecified) || support.Time.GetUtcNow() > deadline)
            {
                return state;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(100), support.Time, cancellationToken);
        }
    }

    /// <summary>Claims the VM's size on the target for the migration; the refusal, or null. A retry finds the claim made.</summary>
    private async Task<string?> ClaimTargetAsync(OperationEntity operation, VmEntity vm, NodeEntity target, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 16; attempt++)
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await using (var held = new NpgsqlCommand("SELECT count(*) FROM allocations WHERE consumer_id = $1", connection, transaction))
            {
                held.Parameters.Add(new NpgsqlParameter { Value = operation.Id });
                if ((long)(await held.ExecuteScalarAsync(cancellationToken))! > 0)
                {
                    return null;
                }
            }
            var claim = await ledger.TryClaimAsync(
                [new Claim(operation.Id, ConsumerKinds.Migration, vm.ProjectId, target.Id, await GenerationAsync(transaction, target.Id, cancellationToken), new ResourceRequest(vm.Vcpus, vm.MemoryMb, vm.DiskGb).ToAmounts())],
                transaction, cancellationToken);
            if (claim.Succeeded)
            {
                await transaction.CommitAsync(cancellationToken);
                scheduler.InvalidateAll();
                return null;
            }
            if (claim.Conflicts[0].Reason is ClaimConflictReason.InsufficientCapacity or ClaimConflictReason.NodeMissing)
            {
                return $"The VM does not fit on node {target.Name} ({claim.Conflicts[0].Reason}).";
            }
        }
        return $"The claim on node {target.Name} kept losing races; try again.";
    }

    private async Task RollBackAsync(Guid operationId, string vmRef, string migrationId, AgentConnection sourceAgent, AgentConnection targetAgent, Guid targetId,
        string message, bool recovered, CancellationToken cancellationToken, string? code = null)
    {
        var abort = new AgentV1.AbortMigrationRequest { VmId = vmRef, MigrationId = migrationId };
        foreach (var agent in (AgentConnection[])[sourceAgent, targetAgent])
        {
            try
            {
                await agent.CallAsync((c, o) => c.AbortMigrationAsync(abort, o), cancellationToken);
            }
            catch (RpcException e)
            {
                // The claim is kept only while the target may still hold the incoming guest.
                Log.AbortFailed(logger, vmRef, e.Status.Detail);
            }
        }
        await support.FinishAsync(operationId, code ?? ApiException.CodeName(StatusCode.Aborted), message, async t =>
        {
            await scheduler.ReleaseAsync(operationId, targetId, t, cancellationToken);
            if (recovered)
            {
                await VmHandlerSupport.ExecuteAsync(t, "UPDATE operations SET recovery = 'ROLLED_BACK' WHERE id = $1", cancellationToken, operationId);
            }
        }, cancellationToken);
    }

    private static async Task<long> GenerationAsync(NpgsqlTransaction transaction, Guid nodeId, CancellationToken cancellationToken)
    {
        await using var read = new NpgsqlCommand("SELECT generation FROM nodes WHERE id = $1", transaction.Connection, transaction);
        read.Parameters.Add(new NpgsqlParameter { Value = nodeId });
        return (long)(await read.ExecuteScalarAsync(cancellationToken))!;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3101, Level = LogLevel.Warning, Message = "Migration of VM {VmId} from {Source} to {Target} failed: {Detail}")]
        public static partial void MigrationFailed(ILogger logger, Guid vmId, string source, string target, string detail);

        [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Aborting the migration of VM {VmId} on a node failed: {Detail}")]
        public static partial void AbortFailed(ILogger logger, string vmId, string detail);
    }
}
