using System.Collections.Concurrent;
using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Cloud.Controller.Operations;
using Cloud.Controller.Quotas;
using Cloud.Controller.Scheduling;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Google.Protobuf;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cloud.Controller.Vms;

/// <summary>
/// vm.create_batch: places the batch's VMs in one pass and claims them in one transaction (all,
/// or at least the minimum), then asks each node's agent to create its VMs, a bounded number at
/// once. The claim's transaction also records each VM's node (one statement, in the claim's round
/// trip), fails the VMs that did not fit with their decision's reason, and charges the quota of
/// the placed ones (one statement), so a crash leaves either nothing placed or all of it.
/// Resumable: PENDING VMs mean the placement did not commit and is done again; otherwise the
/// agents' creates (idempotent) are asked again for the VMs still CREATING. A VM whose agent
/// refuses gives its claim and quota back and ends in ERROR; the others go on.
/// </summary>
internal sealed class CreateVmsHandler(
    IDbContextFactory<LedgerDbContext> contexts,
    NpgsqlDataSource dataSource,
    Scheduler scheduler,
    AgentVmCreation creation,
    IOptions<OperationOptions> operationOptions,
    TimeProvider time) : IOperationHandler
{
    /// <summary>Agent calls of one batch in flight at once: enough to hide their latency, few enough not to swamp a node.</summary>
    internal const int AgentConcurrency = 16;

    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default);

    public string Kind => OperationKinds.VmCreateBatch;

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        var batch = VmHandlerSupport.Input<CreateVmsResult>(operation);
        var ids = batch.Vms.Select(v => Guid.Parse(v.Id)).ToArray();
        var vms = await LoadAsync(ids, cancellationToken);
        var pending = vms.Where(v => v.NodeId is null && v.State == VmStates.Pending).ToList();
        if (pending.Count > 0)
        {
            await ProgressAsync(operation.Id, 10, cancellationToken);
            if (!await PlaceAsync(operation.Id, batch, pending, cancellationToken))
            {
                return;
            }
            vms = await LoadAsync(ids, cancellationToken);
        }

        await ProgressAsync(operation.Id, 50, cancellationToken);
        var placed = vms.Where(v => v.NodeId is not null).ToList();
        var creating = placed.Where(v => v.State == VmStates.Creating).ToList();
        Dictionary<Guid, NodeEntity> nodes;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            var nodeIds = placed.Select(v => v.NodeId!.Value).Distinct().ToList();
            nodes = await db.Nodes.AsNoTracking().Where(n => nodeIds.Contains(n.Id)).ToDictionaryAsync(n => n.Id, cancellationToken);
        }
        var refusals = await CreateOnAgentsAsync(operation, creating, nodes, cancellationToken);

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var now = time.GetUtcNow();
        foreach (var (vmId, refusal) in refusals)
        {
            await creation.ReleaseAsync(transaction, vmId, refusal.Message, now, cancellationToken);
        }
        await VmRowUpdates.MarkRunningAsync(transaction, [.. creating.Select(v => v.Id).Where(id => !refusals.ContainsKey(id))], now, cancellationToken);

        var byId = vms.ToDictionary(v => v.Id);
        var result = new CreateVmsResult { Requested = batch.Requested, Minimum = batch.Minimum, Placed = placed.Count };
        foreach (var listed in batch.Vms)
        {
            var vm = byId[Guid.Parse(listed.Id)];
            var outcome = new BatchVm { Id = listed.Id, Name = listed.Name, State = vm.State, Error = vm.Error ?? "" };
            if (refusals.TryGetValue(vm.Id, out var refusal))
            {
                outcome.State = VmStates.Error;
                outcome.Error = refusal.Message;
            }
            else if (vm.NodeId is { } nodeId)
            {
                outcome.Node = nodes.TryGetValue(nodeId, out var node) ? node.Name : "";
                outcome.State = vm.State == VmStates.Creating ? VmStates.Running : vm.State;
                result.Created += outcome.State == VmStates.Running ? 1 : 0;
            }
            result.Vms.Add(outcome);
        }
        await WriteResultAsync(transaction, operation.Id, result, cancellationToken);
        if (result.Created >= batch.Minimum)
        {
            await VmRowUpdates.FinishOperationAsync(transaction, operation.Id, null, null, now, cancellationToken);
        }
        else
        {
            // Placed, but the agents refused too many (or the VMs were deleted meanwhile): the
            // batch falls short of what was asked. What was created stays, listed in the result.
            var first = refusals.Values.FirstOrDefault();
            var code = ApiException.CodeName(first?.Code ?? StatusCode.Aborted);
            var message = $"Only {result.Created} of {batch.Requested} VMs were created, fewer than the minimum of {batch.Minimum}."
                + (first is null ? " The others were deleted before they were created." : $" {first.Message}");
            await VmRowUpdates.FinishOperationAsync(transaction, operation.Id, code, message, now, cancellationToken);
        }
        await transaction.CommitAsync(cancellationToken);
    }

    /// <returns>False when the operation ended here: nothing was placed.</returns>
    private async Task<bool> PlaceAsync(Guid operationId, CreateVmsResult batch, List<VmEntity> pending, CancellationToken cancellationToken)
    {
        // One template: the VMs share their size and labels, hence their constraints.
        var template = pending[0];
        if (!PlacementHints.TryParse(template.Labels, out var constraints, out var hintError))
        {
            await FailAllAsync(operationId, batch, pending, VmStates.Error, StatusCode.InvalidArgument, hintError!, null, cancellationToken);
            return false;
        }
        var items = pending.Select(v => new BatchItem(v.Id, v.ProjectId, new PlacementRequest(new ResourceRequest(v.Vcpus, v.MemoryMb, v.DiskGb), constraints))).ToList();
        // VMs deleted before they were placed have left the batch: the minimum cannot be more than what remains.
        var minimum = Math.Min(batch.Minimum, items.Count);
        BatchResult result;
        try
        {
            result = await scheduler.PlaceBatchAsync(items, minimum,
                placed => VmRowUpdates.MarkPlacedCommand([.. placed.Select(p => (p.Item.ConsumerId, p.Node.NodeId))], time.GetUtcNow()),
                async (transaction, placed, ct) =>
                {
                    var placedIds = placed.Select(p => p.Item.ConsumerId).ToArray();
                    if (await CountCreatingAsync(transaction, placedIds, ct) != placedIds.Length)
                    {
                        // A VM was deleted between loading and claiming: the claim rolls back, and the
                        // operation is retried (its lease runs out) without it.
                        throw new InvalidOperationException("A VM of the batch changed while it was being placed.");
                    }
                    var placedSet = placedIds.ToHashSet();
                    await MarkUnplacedWithDecisionAsync(transaction, [.. items.Select(i => i.ConsumerId).Where(id => !placedSet.Contains(id))], time.GetUtcNow(), ct);
                    // One charge for the placed VMs, in the claim's transaction: a refusal throws and the claim rolls back with it.
                    var sizes = pending.Where(v => placedSet.Contains(v.Id)).ToList();
                    await QuotaLedger.ChargeAsync(transaction, template.ProjectId,
                        new QuotaUsage(sizes.Count, sizes.Sum(v => v.Vcpus), sizes.Sum(v => v.MemoryMb), sizes.Sum(v => v.DiskGb), 0), ct);
                },
                cancellationToken);
        }
        catch (QuotaExceededException e)
        {
            // As for one VM: what the quota refused never existed anywhere.
            await FailAllAsync(operationId, batch, pending, VmStates.Deleted, StatusCode.ResourceExhausted, e.Message, null, cancellationToken);
            return false;
        }
        if (result.Placed.Count == 0)
        {
            var reasons = result.Unplaced.ToDictionary(u => u.Item.ConsumerId, u => u.Failure.Summary);
            await FailAllAsync(operationId, batch, pending, VmStates.Error, StatusCode.ResourceExhausted, reasons[pending[0].Id], reasons, cancellationToken);
            return false;
        }
        return true;
    }

    /// <summary>
    /// The agents' creates, grouped by node (the image brought to each node once), at most
    /// <see cref="AgentConcurrency"/> at once. Progress goes from 50 to 95 as they finish, and
    /// each step renews this replica's lease: a large batch may take longer than one lease, and
    /// another replica should take it over only when it stops moving.
    /// </summary>
    private async Task<Dictionary<Guid, AgentRefusal>> CreateOnAgentsAsync(
        OperationEntity operation, List<VmEntity> creating, Dictionary<Guid, NodeEntity> nodes, CancellationToken cancellationToken)
    {
        var refusals = new ConcurrentDictionary<Guid, AgentRefusal>();
        using var gate = new SemaphoreSlim(AgentConcurrency);
        using var reporting = new SemaphoreSlim(1, 1);
        var finished = 0;
        var shown = 50;
        async Task ReportAsync()
        {
            var progress = 50 + (45 * Interlocked.Increment(ref finished) / creating.Count);
            // One report at a time; a finish that finds one under way leaves it to the next.
            if (progress <= Volatile.Read(ref shown) || !await reporting.WaitAsync(0, cancellationToken))
            {
                return;
            }
            try
            {
                Volatile.Write(ref shown, progress);
                await RenewAsync(operation, progress, cancellationToken);
            }
            finally
            {
                reporting.Release();
            }
        }
        async Task<T> GatedAsync<T>(Func<Task<T>> call)
        {
            await gate.WaitAsync(cancellationToken);
            try
            {
                return await call();
            }
            finally
            {
                gate.Release();
            }
        }
        await Task.WhenAll(creating.GroupBy(v => v.NodeId!.Value).Select(async onNode =>
        {
            var node = nodes[onNode.Key];
            var imageRefusal = await GatedAsync(() => creation.EnsureImageAsync(onNode.First().ImageId, node, cancellationToken));
            await Task.WhenAll(onNode.Select(async vm =>
            {
                if ((imageRefusal ?? await GatedAsync(() => creation.CreateAsync(vm, node, withImage: false, cancellationToken))) is { } refusal)
                {
                    refusals[vm.Id] = refusal;
                }
                await ReportAsync();
            }));
        }));
        return new Dictionary<Guid, AgentRefusal>(refusals);
    }

    /// <summary>
    /// Ends the operation with nothing placed: every VM still PENDING goes to <paramref name="state"/>
    /// with its own reason (or the operation's), the result lists them, in one transaction.
    /// </summary>
    private async Task FailAllAsync(Guid operationId, CreateVmsResult batch, List<VmEntity> pending, string state, StatusCode code, string message,
        Dictionary<Guid, string>? reasons, CancellationToken cancellationToken)
    {
        var reasonOf = (Guid id) => reasons is not null && reasons.TryGetValue(id, out var reason) ? reason : message;
        var pendingIds = pending.Select(v => v.Id).ToHashSet();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var now = time.GetUtcNow();
        await using (var command = new NpgsqlCommand(
            """
            UPDATE vms SET state = $3, error = p.error, updated_at = $4
              FROM unnest($1::uuid[], $2::text[]) AS p(id, error)
             WHERE vms.id = p.id AND vms.node_id IS NULL AND vms.state = 'PENDING'
            """, connection, transaction))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = pending.Select(v => v.Id).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = pending.Select(v => reasonOf(v.Id)).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = state });
            command.Parameters.Add(new NpgsqlParameter { Value = now });
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        var result = new CreateVmsResult { Requested = batch.Requested, Minimum = batch.Minimum };
        foreach (var listed in batch.Vms)
        {
            var id = Guid.Parse(listed.Id);
            result.Vms.Add(pendingIds.Contains(id)
                ? new BatchVm { Id = listed.Id, Name = listed.Name, State = state, Error = reasonOf(id) }
                : new BatchVm { Id = listed.Id, Name = listed.Name, State = VmStates.Deleted, Error = "Deleted before it was placed." });
        }
        await WriteResultAsync(transaction, operationId, result, cancellationToken);
        await VmRowUpdates.FinishOperationAsync(transaction, operationId, ApiException.CodeName(code), message, now, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>
    /// The VMs that did not fit, in the claim's transaction: ERROR, with the reason their own
    /// decision gives (written in the claim's round trip, just before).
    /// </summary>
    private static async Task MarkUnplacedWithDecisionAsync(NpgsqlTransaction transaction, Guid[] vmIds, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (vmIds.Length == 0)
        {
            return;
        }
        await using var command = new NpgsqlCommand(
            """
            UPDATE vms SET state = 'ERROR', updated_at = $2,
                   error = coalesce((SELECT d.summary FROM placement_decisions d WHERE d.consumer_id = vms.id ORDER BY d.created_at DESC LIMIT 1), 'Not placed.')
             WHERE vms.id = ANY($1) AND vms.node_id IS NULL AND vms.state = 'PENDING'
            """, transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = vmIds });
        command.Parameters.Add(new NpgsqlParameter { Value = now });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<long> CountCreatingAsync(NpgsqlTransaction transaction, Guid[] vmIds, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT count(*) FROM vms WHERE id = ANY($1) AND state = 'CREATING' AND node_id IS NOT NULL", transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = vmIds });
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>Progress, and the lease renewed, as long as this replica still holds the operation.</summary>
    private async Task RenewAsync(OperationEntity operation, int progress, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var now = time.GetUtcNow();
        var until = now + operationOptions.Value.Lease;
        await db.Operations.Where(o => o.Id == operation.Id && o.Owner == operation.Owner && o.State == OperationStates.Running).ExecuteUpdateAsync(s => s
            .SetProperty(o => o.Progress, progress)
            .SetProperty(o => o.UpdatedAt, now)
            .SetProperty(o => o.LeaseExpiresAt, until), cancellationToken);
    }

    private static Task<int> WriteResultAsync(NpgsqlTransaction transaction, Guid operationId, CreateVmsResult result, CancellationToken cancellationToken)
        => VmHandlerSupport.ExecuteAsync(transaction, "UPDATE operations SET result = $2 WHERE id = $1", cancellationToken, operationId, Formatter.Format(result));

    private async Task<List<VmEntity>> LoadAsync(Guid[] ids, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        return await db.Vms.AsNoTracking().Where(v => ids.Contains(v.Id)).ToListAsync(cancellationToken);
    }

    private async Task ProgressAsync(Guid operationId, int progress, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        await OperationUpdates.ProgressAsync(db, operationId, progress, time, cancellationToken);
    }
}
