using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
using Cloud.Controller.Scheduling;
using Grpc.Core;
using Npgsql;
using AgentV1 = Cloud.Contracts.Agent.V1;
using Phase = Cloud.Contracts.Agent.V1.MigrationProgress.Types.Phase;

namespace Cloud.Controller.Vms;

/// <summary>The outcome of claiming a migration's target: claimed, or why not (and whether for lack of room).</summary>
internal sealed record TargetClaim(bool Claimed, string? Refusal, bool NoRoom)
{
    public static readonly TargetClaim Done = new(true, null, false);
}

/// <summary>
/// The steps a VM's move between nodes is made of, shared by the operator's migration and the
/// resize that moves: the target's capacity held by a migration consumer (the operation's id)
/// while the source keeps the VM's own; the agents' prepare, stream and arrival, with the
/// operation's progress following the bytes moved; the abort of both sides; and the landing,
/// where one transaction leaves exactly the VM's claim on the target.
/// </summary>
internal sealed partial class LiveMigration(
    VmHandlerSupport support,
    NpgsqlDataSource dataSource,
    Scheduler scheduler,
    CapacityLedger ledger,
    Images.ImageDistribution images,
    VmSpecs specs,
    Trust.PeerGrants grants,
    ILogger<LiveMigration> logger)
{
    /// <summary>How long a target may take to prepare, its copy of the VM's snapshots included.</summary>
    private static readonly TimeSpan PrepareTimeout = TimeSpan.FromMinutes(30);

    /// <summary>
    /// Claims <paramref name="size"/> on the target for the migration consumer <paramref name="operationId"/>,
    /// with <paramref name="alsoInTransaction"/> (a quota charge) in the same transaction. A retry finds the claim made.
    /// </summary>
    public async Task<TargetClaim> ClaimTargetAsync(Guid operationId, string projectId, NodeEntity target, ResourceRequest size,
        Func<NpgsqlTransaction, Task>? alsoInTransaction, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 16; attempt++)
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            if (await HeldOnAsync(transaction, operationId, cancellationToken) is not null)
            {
                return TargetClaim.Done;
            }
            var claim = await ledger.TryClaimAsync(
                [new Claim(operationId, ConsumerKinds.Migration, projectId, target.Id, await GenerationAsync(transaction, target.Id, cancellationToken), size.ToAmounts())],
                transaction, cancellationToken);
            if (claim.Succeeded)
            {
                if (alsoInTransaction is not null)
                {
                    await alsoInTransaction(transaction);
                }
                await transaction.CommitAsync(cancellationToken);
                scheduler.InvalidateAll();
                return TargetClaim.Done;
            }
            if (claim.Conflicts[0].Reason is ClaimConflictReason.InsufficientCapacity or ClaimConflictReason.NodeMissing)
            {
                return new TargetClaim(false, $"The VM does not fit on node {target.Name} ({claim.Conflicts[0].Reason}).", NoRoom: true);
            }
        }
        return new TargetClaim(false, $"The claim on node {target.Name} kept losing races; try again.", NoRoom: false);
    }

    /// <summary>The node a migration consumer holds capacity on, or null when it holds none.</summary>
    public static async Task<Guid?> HeldOnAsync(NpgsqlTransaction transaction, Guid operationId, CancellationToken cancellationToken)
    {
        await using var held = new NpgsqlCommand("SELECT node_id FROM allocations WHERE consumer_id = $1 LIMIT 1", transaction.Connection, transaction);
        held.Parameters.Add(new NpgsqlParameter { Value = operationId });
        return await held.ExecuteScalarAsync(cancellationToken) is Guid node ? node : null;
    }

    /// <summary>
    /// Prepares the incoming VM on the target, streams it from the source while the operation's
    /// progress runs from <paramref name="fromProgress"/> to <paramref name="toProgress"/>, and
    /// waits until the target runs it; the state the target reports then. Any failure is an
    /// <see cref="RpcException"/>; the caller aborts both sides.
    /// </summary>
    public async Task<AgentV1.VmState> MoveAsync(Guid operationId, VmEntity vm, NodeEntity sourceNode, AgentConnection source, NodeEntity targetNode, AgentConnection target,
        int fromProgress, int toProgress, CancellationToken cancellationToken)
    {
        var targetNodeId = targetNode.Id;
        var migrationId = operationId.ToString("N");
        var vmRef = vm.Id.ToString("N");
        // The target's overlay needs the same base image the source's has.
        await images.EnsureOnNodeAsync(vm.ImageId, targetNodeId, target, cancellationToken);
        // Memory hot-added since boot is not in the spec: the target recreates the guest's DIMMs
        // from the layout the source reports, or the migration stream would not fit.
        // The hotplug bounds come from the source too: they shape the machine the stream must fit.
        var running = (await source.CallAsync((c, o) => c.ListVmsAsync(new AgentV1.ListVmsRequest(), o), cancellationToken))
            .Vms.FirstOrDefault(v => v.VmId == vmRef);
        var spec = specs.For(vm);
        if (running?.Shape is { } shape)
        {
            spec.Shape.MaxVcpus = shape.MaxVcpus;
            spec.Shape.MaxMemoryMb = shape.MaxMemoryMb;
        }
        // The target pulls and checks every snapshot of the VM from the source before the stream
        // starts; the source keeps its own until the VM runs on the target (docs/design/011).
        // Not through the per-attempt deadline of other agent calls: copying a VM's snapshots
        // takes as long as their bytes do, and a retry would start the copy over.
        var prepared = await target.Client.PrepareMigrationAsync(new AgentV1.PrepareMigrationRequest
        {
            Spec = spec,
            MigrationId = migrationId,
            MemoryLayout = running?.MemoryLayout,
            SnapshotSource = source.Address,
            SnapshotGrant = grants.ForSnapshots(targetNode.Name, sourceNode.Name, vm.Id),
            // Each side's QEMU admits (target) or expects (source) only the other node's certificate.
            PeerNode = sourceNode.Name,
        }, new CallOptions(deadline: DateTime.UtcNow + PrepareTimeout, cancellationToken: cancellationToken));
        await RequireSnapshotsOnTargetAsync(vm.Id, prepared, cancellationToken);
        await support.ProgressAsync(operationId, fromProgress, cancellationToken);
        using var call = source.Client.Migrate(new AgentV1.MigrateRequest
        {
            VmId = vmRef,
            MigrationId = migrationId,
            MigrationUri = prepared.MigrationUri,
            DiskUri = prepared.DiskUri,
            PeerNode = targetNode.Name,
        }, new CallOptions(cancellationToken: cancellationToken));
        AgentV1.MigrationProgress? last = null;
        var reported = fromProgress;
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            last = call.ResponseStream.Current;
            var span = toProgress - fromProgress;
            var done = last.TotalBytes > 0 ? (int)Math.Clamp(fromProgress + (span * last.TransferredBytes / last.TotalBytes), fromProgress, toProgress) : reported;
            if (done > reported)
            {
                reported = done;
                await support.ProgressAsync(operationId, done, cancellationToken);
            }
        }
        if (last?.Phase != Phase.Completed)
        {
            throw new RpcException(new Status(StatusCode.Aborted, $"The migration ended {last?.Phase.ToString() ?? "without a word"}: {last?.Error}"));
        }
        Log.Migrated(logger, vm.Id, last.TotalTimeMs, last.DowntimeMs, last.TransferredBytes);
        return await WaitForArrivalAsync(target, vmRef, cancellationToken);
    }

    /// <summary>
    /// Every READY snapshot the ledger has of the VM must be on the target before the VM may go: a
    /// target that did not take one in (an agent that predates snapshot transfer, or data the
    /// source no longer had) stops the move, and the VM and its snapshots stay where they are.
    /// </summary>
    private async Task RequireSnapshotsOnTargetAsync(Guid vmId, AgentV1.PrepareMigrationResponse prepared, CancellationToken cancellationToken)
    {
        await using var read = dataSource.CreateCommand("SELECT id FROM snapshots WHERE vm_id = $1 AND state = 'READY'");
        read.Parameters.Add(new NpgsqlParameter { Value = vmId });
        var missing = new List<string>();
        await using (var reader = await read.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var id = reader.GetGuid(0);
                if (!prepared.SnapshotIds.Contains(id.ToString("N")))
                {
                    missing.Add(id.ToString());
                }
            }
        }
        if (missing.Count > 0)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"The target node did not take in snapshot(s) {string.Join(", ", missing)} of the VM; the VM stays where it is with all its snapshots."));
        }
    }

    /// <summary>Aborts the migration on both nodes: the source keeps (and resumes) the guest, the target drops what it prepared.</summary>
    public async Task AbortAsync(Guid operationId, Guid vmId, AgentConnection source, AgentConnection target, CancellationToken cancellationToken)
    {
        var abort = new AgentV1.AbortMigrationRequest { VmId = vmId.ToString("N"), MigrationId = operationId.ToString("N") };
        foreach (var agent in (AgentConnection[])[source, target])
        {
            try
            {
                await agent.CallAsync((c, o) => c.AbortMigrationAsync(abort, o), cancellationToken);
            }
            catch (RpcException e)
            {
                // The claim is kept only while the target may still hold the incoming guest.
                Log.AbortFailed(logger, vmId, e.Status.Detail);
            }
        }
    }

    /// <summary>
    /// In the caller's transaction: releases the migration consumer's and the VM's claims, claims
    /// <paramref name="size"/> for the VM on the target and moves the VM's row, and the record of
    /// where its snapshots are, there.
    /// </summary>
    public async Task LandAsync(NpgsqlTransaction transaction, Guid operationId, VmEntity vm, NodeEntity target, ResourceRequest size, CancellationToken cancellationToken)
    {
        // Releasing the VM's consumer drops its server-group memberships with it (a cascade):
        // they are the VM's, not the node's, and come back with the new claim.
        var groupIds = new List<Guid>();
        await using (var read = new NpgsqlCommand("SELECT group_id FROM server_group_members WHERE consumer_id = $1", transaction.Connection, transaction))
        {
            read.Parameters.Add(new NpgsqlParameter { Value = vm.Id });
            await using var reader = await read.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                groupIds.Add(reader.GetGuid(0));
            }
        }
        await scheduler.ReleaseAsync(operationId, target.Id, transaction, cancellationToken);
        await scheduler.ReleaseAsync(vm.Id, vm.NodeId, transaction, cancellationToken);
        var claim = await ledger.TryClaimAsync(
            [new Claim(vm.Id, ConsumerKinds.Vm, vm.ProjectId, target.Id, await GenerationAsync(transaction, target.Id, cancellationToken), size.ToAmounts())],
            transaction, cancellationToken);
        if (!claim.Succeeded)
        {
            // The migration consumer held exactly this capacity a statement ago, in this transaction.
            throw new InvalidOperationException($"The VM's claim on {target.Name} was refused after its migration: {claim.Conflicts[0].Reason}.");
        }
        if (groupIds.Count > 0)
        {
            await using var restore = new NpgsqlCommand(
                "INSERT INTO server_group_members (group_id, consumer_id) SELECT unnest($1::uuid[]), $2 ON CONFLICT DO NOTHING", transaction.Connection, transaction);
            restore.Parameters.Add(new NpgsqlParameter { Value = groupIds.ToArray() });
            restore.Parameters.Add(new NpgsqlParameter { Value = vm.Id });
            await restore.ExecuteNonQueryAsync(cancellationToken);
        }
        await VmHandlerSupport.ExecuteAsync(transaction, "UPDATE vms SET node_id = $2, updated_at = $3 WHERE id = $1",
            cancellationToken, vm.Id, target.Id, support.Time.GetUtcNow());
        // The target pulled the VM's snapshots before the move (PrepareMigration): their data is
        // there now, and the ledger says so in the same transaction as the VM's own move.
        await SnapshotRows.FollowVmAsync(transaction, vm.Id, target.Id, cancellationToken);
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
            var state = await StateOnAsync(target, vmRef, cancellationToken);
            if (state is not (AgentV1.VmState.Incoming or AgentV1.VmState.Unspecified) || support.Time.GetUtcNow() > deadline)
            {
                return state;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(100), support.Time, cancellationToken);
        }
    }

    /// <summary>
    /// The migration stream needs a QEMU on each side: a stopped VM gets one on its node with its
    /// vCPUs stopped, so that the guest runs no instruction on either node, and is powered off
    /// on the destination once it arrived, or on its node again if the move fails (docs/design/007).
    /// </summary>
    public async Task StartPausedForMoveAsync(VmEntity vm, NodeEntity source, AgentConnection sourceAgent, CancellationToken cancellationToken)
    {
        var started = await sourceAgent.CallAsync(
            (c, o) => c.StartVmAsync(new AgentV1.StartVmRequest { VmId = vm.Id.ToString("N"), Paused = true }, o), cancellationToken);
        if (started.State is not AgentV1.VmState.Paused)
        {
            Log.StartedRunning(logger, vm.Id, source.Name, started.State.ToString());
        }
    }

    /// <summary>Powers a VM that was stopped before its move off on <paramref name="agent"/> (forced: its guest never ran).</summary>
    public static Task<AgentV1.Vm> PowerOffAsync(AgentConnection agent, Guid vmId, CancellationToken cancellationToken)
        => agent.CallAsync((c, o) => c.StopVmAsync(new AgentV1.StopVmRequest { VmId = vmId.ToString("N"), Force = true, TimeoutSeconds = 30 }, o), cancellationToken);

    /// <summary>The state a node's agent reports for a VM; Unspecified when it does not have it.</summary>
    public static async Task<AgentV1.VmState> StateOnAsync(AgentConnection agent, string vmRef, CancellationToken cancellationToken)
    {
        var vms = await agent.CallAsync((c, o) => c.ListVmsAsync(new AgentV1.ListVmsRequest(), o), cancellationToken);
        return vms.Vms.FirstOrDefault(v => v.VmId == vmRef)?.State ?? AgentV1.VmState.Unspecified;
    }

    public static async Task<long> GenerationAsync(NpgsqlTransaction transaction, Guid nodeId, CancellationToken cancellationToken)
    {
        await using var read = new NpgsqlCommand("SELECT generation FROM nodes WHERE id = $1", transaction.Connection, transaction);
        read.Parameters.Add(new NpgsqlParameter { Value = nodeId });
        return (long)(await read.ExecuteScalarAsync(cancellationToken))!;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3103, Level = LogLevel.Information, Message = "VM {VmId} migrated: {TotalTimeMs} ms in all, paused for {DowntimeMs} ms, {TransferredBytes} bytes of memory sent")]
        public static partial void Migrated(ILogger logger, Guid vmId, long totalTimeMs, long downtimeMs, long transferredBytes);

        [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Aborting the migration of VM {VmId} on a node failed: {Detail}")]
        public static partial void AbortFailed(ILogger logger, Guid vmId, string detail);

        [LoggerMessage(EventId = 3114, Level = LogLevel.Warning, Message = "Stopped VM {VmId} was to move paused, but the agent on {Source} started it {State}: an agent that predates paused starts runs the guest for the move")]
        public static partial void StartedRunning(ILogger logger, Guid vmId, string source, string state);
    }
}
