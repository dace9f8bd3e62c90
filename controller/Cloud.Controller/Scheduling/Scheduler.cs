using System.Diagnostics;
using System.Text.Json;
using Cloud.Controller.Data;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cloud.Controller.Scheduling;

/// <summary>The outcome of placing one VM: the node it went to, or why none would take it.</summary>
internal sealed record PlacementResult(NodeCapacity? Node, PlacementFailure? Failure)
{
    public bool Placed => Node is not null;

    /// <summary>The recorded decision, readable through the placement API.</summary>
    public Guid DecisionId { get; init; }
}

/// <summary>One VM of a batch.</summary>
internal sealed record BatchItem(Guid ConsumerId, string ProjectId, PlacementRequest Request);

/// <summary>A VM of a batch and the node it was placed on.</summary>
internal sealed record BatchAssignment(BatchItem Item, NodeCapacity Node);

/// <summary>
/// The outcome of a batch: the VMs placed (all claimed in one transaction) and the ones that
/// did not fit. When fewer than the minimum fit, nothing is placed.
/// </summary>
internal sealed record BatchResult(IReadOnlyList<BatchAssignment> Placed, IReadOnlyList<(BatchItem Item, PlacementFailure Failure)> Unplaced, int Attempts);

/// <summary>The answer to "where would this go, and why not on node X?".</summary>
internal sealed record DryRunResult(PlacementOutcome Outcome, PlacementFailure? Failure, NodeExplanation? Explanation, Guid DecisionId);

/// <summary>
/// Places VMs on nodes. Filters and weighs an in-memory view of capacity, then commits the claim
/// in PostgreSQL as a conditional update: under the node's row lock, the capacity check refuses
/// a claim that no longer fits (the view was stale), the node is reloaded, and the placement is
/// tried again. Claims do not insist on the node's generation, since another replica's claim on
/// a roomy node would otherwise refuse ours for nothing (docs/design/006-scheduling.md). No lock
/// is held while deciding, so any number of replicas place at once. Every decision is recorded.
/// </summary>
internal sealed partial class Scheduler(
    CapacityLedger ledger,
    NpgsqlDataSource dataSource,
    PlacementEngine engine,
    PlacementStore store,
    CapacityView view,
    IOptions<SchedulerOptions> options,
    TimeProvider time,
    ILogger<Scheduler> logger)
{
    internal static readonly ActivitySource Activity = new("Cloud.Scheduler");

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly SemaphoreSlim _refreshGate = new(1, 1);
    private readonly HashSet<Guid> _dirty = [];

    /// <summary>Places one VM on resources alone; see the overload with constraints.</summary>
    public Task<PlacementResult> PlaceAsync(
        Guid consumerId,
        string projectId,
        ResourceRequest request,
        Func<NpgsqlTransaction, NodeCapacity, CancellationToken, Task> inTransaction,
        CancellationToken cancellationToken)
        => PlaceAsync(consumerId, projectId, new PlacementRequest(request), inTransaction, cancellationToken);

    /// <summary>
    /// Places one consumer and claims its resources. <paramref name="inTransaction"/> runs in the
    /// claim's transaction, so that the VM row records its node atomically with the allocation.
    /// </summary>
    public Task<PlacementResult> PlaceAsync(
        Guid consumerId,
        string projectId,
        PlacementRequest request,
        Func<NpgsqlTransaction, NodeCapacity, CancellationToken, Task> inTransaction,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(inTransaction);
        return PlaceAsync(consumerId, projectId, request, null, inTransaction, cancellationToken);
    }

    /// <summary>
    /// Places one consumer and claims its resources. <paramref name="alongside"/> builds a
    /// statement for the chosen node (the VM row, say) that goes to PostgreSQL in the claim's own
    /// round trip; <paramref name="inTransaction"/> runs after the claim in its transaction. Either
    /// is undone with a refused claim. On a replica whose claim loop runs, a request without a
    /// server group is committed together with the others queued at the same moment; a callback
    /// that throws then fails its own request only.
    /// </summary>
    public async Task<PlacementResult> PlaceAsync(
        Guid consumerId,
        string projectId,
        PlacementRequest request,
        Func<NodeCapacity, NpgsqlBatchCommand>? alongside,
        Func<NpgsqlTransaction, NodeCapacity, CancellationToken, Task>? inTransaction,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var started = Stopwatch.GetTimestamp();
        var outcome = "error";
        try
        {
            var result = await PlaceOneAsync(consumerId, projectId, request, alongside, inTransaction, cancellationToken);
            outcome = result.Placed ? "placed" : "unplaced";
            return result;
        }
        finally
        {
            SchedulerTelemetry.Record("single", outcome, 1, started);
        }
    }

    private async Task<PlacementResult> PlaceOneAsync(
        Guid consumerId,
        string projectId,
        PlacementRequest request,
        Func<NodeCapacity, NpgsqlBatchCommand>? alongside,
        Func<NpgsqlTransaction, NodeCapacity, CancellationToken, Task>? inTransaction,
        CancellationToken cancellationToken)
    {
        using var span = Activity.StartActivity("schedule");
        span?.SetTag("cloud.consumer_id", consumerId);
        var item = new BatchItem(consumerId, projectId, request);
        // Server groups need their membership checked under the group's lock and decided again on
        // a race: such requests (rare) are placed alone.
        if (request.Constraints.ServerGroupId is null
            && await TryPlaceInGroupAsync(item, alongside, inTransaction, cancellationToken) is { } grouped)
        {
            span?.SetTag("cloud.placed", grouped.Placed);
            return grouped;
        }
        var (group, groupFailure) = await LoadGroupAsync(request.Constraints.ServerGroupId, projectId, cancellationToken);
        if (groupFailure is not null)
        {
            return await FailAsync(item, groupFailure, "place", 1, cancellationToken);
        }

        var attempts = options.Value.MaxClaimAttempts;
        for (var attempt = 1; attempt <= attempts; attempt++)
        {
            await EnsureViewAsync(cancellationToken);
            var placing = request.WithGroup(group?.Clone());
            var outcome = engine.Evaluate(view.Nodes, placing);
            if (outcome.Node is not { } node)
            {
                span?.SetTag("cloud.placed", false);
                return await FailAsync(item, outcome.Failure!, "place", attempt, cancellationToken);
            }

            var epoch = view.EpochOf(node.NodeId);
            var claim = new Claim(consumerId, ConsumerKinds.Vm, projectId, node.NodeId, Claim.AnyGeneration, request.Resources.ToAmounts());
            var decision = Decision(item, "place", outcome, node, attempt);
            NpgsqlBatchCommand[] statements = alongside is null
                ? [PlacementStore.RecordCommand([decision])]
                : [PlacementStore.RecordCommand([decision]), alongside(node)];
            string? violation = null;
            Func<NpgsqlTransaction, Task<bool>>? afterClaim = inTransaction is null && group is null ? null : async transaction =>
            {
                if (inTransaction is not null)
                {
                    await inTransaction(transaction, node, cancellationToken);
                }
                violation = group is null ? null : await PlacementStore.AddMembersAsync(transaction, group.Id, [consumerId], cancellationToken);
                return violation is null;
            };
            var result = await ClaimAndCommitAsync([claim], statements, afterClaim, cancellationToken);
            if (result is null)
            {
                // Another replica placed a member meanwhile: decide again with the group as it is now.
                Log.GroupRace(logger, consumerId, violation!);
                (group, _) = await LoadGroupAsync(group!.Id, projectId, cancellationToken);
                continue;
            }
            if (!result.Succeeded)
            {
                await RefreshNodesAsync(result.ConflictingNodeIds, cancellationToken);
                continue;
            }
            view.Apply(node.NodeId, [request], epoch);
            span?.SetTag("cloud.node", node.Name).SetTag("cloud.attempts", attempt);
            return new PlacementResult(node, null) { DecisionId = decision.Id };
        }
        return await FailAsync(item, PlacementFailure.Because($"The claim lost {attempts} races for capacity; try again."), "place", attempts, cancellationToken);
    }

    /// <summary>
    /// Places a batch in one pass over the view and claims it in one transaction: every VM that
    /// fits, as long as at least <paramref name="minimum"/> do; otherwise none. A claim refused
    /// because another replica got there first reloads those nodes and redoes the pass.
    /// </summary>
    /// <exception cref="ArgumentException">The batch is empty, too large, repeats a consumer, or asks for an impossible minimum.</exception>
    public Task<BatchResult> PlaceBatchAsync(
        IReadOnlyList<BatchItem> items,
        int minimum,
        Func<NpgsqlTransaction, IReadOnlyList<BatchAssignment>, CancellationToken, Task>? inTransaction,
        CancellationToken cancellationToken)
        => PlaceBatchAsync(items, minimum, null, inTransaction, cancellationToken);

    /// <summary>
    /// As <see cref="PlaceBatchAsync(IReadOnlyList{BatchItem}, int, Func{NpgsqlTransaction, IReadOnlyList{BatchAssignment}, CancellationToken, Task}?, CancellationToken)"/>,
    /// with <paramref name="alongside"/> building one statement for the placed VMs (their rows)
    /// that goes to PostgreSQL in the claim's round trip.
    /// </summary>
    public async Task<BatchResult> PlaceBatchAsync(
        IReadOnlyList<BatchItem> items,
        int minimum,
        Func<IReadOnlyList<BatchAssignment>, NpgsqlBatchCommand>? alongside,
        Func<NpgsqlTransaction, IReadOnlyList<BatchAssignment>, CancellationToken, Task>? inTransaction,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (items.Count == 0 || items.Count > options.Value.MaxBatchSize)
        {
            throw new ArgumentException($"A batch holds 1 to {options.Value.MaxBatchSize} VMs, not {items.Count}.", nameof(items));
        }
        if (minimum < 1 || minimum > items.Count)
        {
            throw new ArgumentException($"The minimum must be between 1 and the batch's size {items.Count}, not {minimum}.", nameof(minimum));
        }
        if (items.Select(i => i.ConsumerId).Distinct().Count() != items.Count)
        {
            throw new ArgumentException("A batch names each VM once.", nameof(items));
        }
        var started = Stopwatch.GetTimestamp();
        BatchResult? placed = null;
        try
        {
            return placed = await PlaceBatchCoreAsync(items, minimum, alongside, inTransaction, cancellationToken);
        }
        finally
        {
            if (placed is null)
            {
                SchedulerTelemetry.Record("batch", "error", items.Count, started);
            }
            else
            {
                SchedulerTelemetry.Record("batch", placed.Placed.Count > 0 ? "placed" : "unplaced", placed.Placed.Count, started);
                SchedulerTelemetry.Placements.Add(placed.Unplaced.Count, new TagList { { "cloud.placement.mode", "batch" }, { "cloud.placement.outcome", "unplaced" } });
            }
        }
    }

    private async Task<BatchResult> PlaceBatchCoreAsync(
        IReadOnlyList<BatchItem> items,
        int minimum,
        Func<IReadOnlyList<BatchAssignment>, NpgsqlBatchCommand>? alongside,
        Func<NpgsqlTransaction, IReadOnlyList<BatchAssignment>, CancellationToken, Task>? inTransaction,
        CancellationToken cancellationToken)
    {
        using var span = Activity.StartActivity("schedule.batch");
        span?.SetTag("cloud.batch.size", items.Count).SetTag("cloud.batch.minimum", minimum);

        var groups = new Dictionary<Guid, ServerGroupState>();
        var groupFailures = new Dictionary<Guid, PlacementFailure>();
        foreach (var item in items)
        {
            if (item.Request.Constraints.ServerGroupId is { } id && !groups.ContainsKey(id) && !groupFailures.ContainsKey(id))
            {
                var (group, failure) = await LoadGroupAsync(id, item.ProjectId, cancellationToken);
                if (group is not null)
                {
                    groups[id] = group;
                }
                else
                {
                    groupFailures[id] = failure!;
                }
            }
        }

        var attempts = options.Value.MaxClaimAttempts;
        for (var attempt = 1; attempt <= attempts; attempt++)
        {
            await EnsureViewAsync(cancellationToken);
            var nodes = view.Nodes.ToArray();
            var passGroups = groups.ToDictionary(g => g.Key, g => g.Value.Clone());
            var placed = new List<(BatchAssignment Assignment, PlacementOutcome Outcome, PlacementRequest Request)>(items.Count);
            var unplaced = new List<(BatchItem Item, PlacementFailure Failure, PlacementOutcome? Outcome)>();
            using (Activity.StartActivity("schedule.decide"))
            {
                foreach (var item in items)
                {
                    var groupId = item.Request.Constraints.ServerGroupId;
                    if (groupId is { } gid && groupFailures.TryGetValue(gid, out var groupFailure))
                    {
                        unplaced.Add((item, groupFailure, null));
                        continue;
                    }
                    var group = groupId is { } g ? passGroups[g] : null;
                    var request = item.Request.WithGroup(group);
                    var outcome = engine.Evaluate(nodes, request);
                    if (outcome.Node is not { } node)
                    {
                        unplaced.Add((item, outcome.Failure!, outcome));
                        continue;
                    }
                    // Later VMs of the batch see this one: its usage, and its group membership.
                    nodes[outcome.Index] = CapacityView.WithUsage(node, [request]);
                    group?.Add(node.NodeId);
                    placed.Add((new BatchAssignment(item, node), outcome, request));
                }
            }

            if (placed.Count < minimum)
            {
                var why = $"Only {placed.Count} of {items.Count} VMs fit, fewer than the minimum of {minimum}; none was placed.";
                var decisions = items.Select(item =>
                {
                    var own = unplaced.FirstOrDefault(u => u.Item == item);
                    var failure = own.Failure is { } f ? f with { Reason = $"{why} This VM: {f.Summary}" } : PlacementFailure.Because(why);
                    return Decision(item, "batch", own.Outcome, null, attempt, failure);
                }).ToList();
                await store.RecordAsync(decisions, cancellationToken);
                span?.SetTag("cloud.batch.placed", 0);
                return new BatchResult([], [.. items.Select((item, k) => (item, PlacementFailure.Because(decisions[k].Summary)))], attempt);
            }

            var epochs = placed.Select(p => p.Assignment.Node.NodeId).Distinct().ToDictionary(id => id, view.EpochOf);
            var claims = placed.Select(p => new Claim(p.Assignment.Item.ConsumerId, ConsumerKinds.Vm, p.Assignment.Item.ProjectId,
                p.Assignment.Node.NodeId, Claim.AnyGeneration, p.Request.Resources.ToAmounts())).ToList();
            var records = placed.Select(p => Decision(p.Assignment.Item, "batch", p.Outcome, p.Assignment.Node, attempt))
                .Concat(unplaced.Select(u => Decision(u.Item, "batch", u.Outcome, null, attempt, u.Failure)))
                .ToList();
            var assignments = placed.Select(p => p.Assignment).ToList();
            NpgsqlBatchCommand[] statements = alongside is null
                ? [PlacementStore.RecordCommand(records)]
                : [PlacementStore.RecordCommand(records), alongside(assignments)];
            string? violation = null;
            Func<NpgsqlTransaction, Task<bool>>? afterClaim = inTransaction is null && groups.Count == 0 ? null : async transaction =>
            {
                if (inTransaction is not null)
                {
                    await inTransaction(transaction, assignments, cancellationToken);
                }
                foreach (var group in groups.Values)
                {
                    var members = placed.Where(p => p.Assignment.Item.Request.Constraints.ServerGroupId == group.Id).Select(p => p.Assignment.Item.ConsumerId).ToArray();
                    if (members.Length > 0 && (violation = await PlacementStore.AddMembersAsync(transaction, group.Id, members, cancellationToken)) is not null)
                    {
                        return false;
                    }
                }
                return true;
            };
            var result = await ClaimAndCommitAsync(claims, statements, afterClaim, cancellationToken);
            if (result is { Succeeded: false })
            {
                await RefreshNodesAsync(result.ConflictingNodeIds, cancellationToken);
                continue;
            }
            if (result is null)
            {
                Log.GroupRace(logger, items[0].ConsumerId, violation!);
                foreach (var id in groups.Keys.ToList())
                {
                    var (fresh, _) = await LoadGroupAsync(id, items[0].ProjectId, cancellationToken);
                    if (fresh is not null)
                    {
                        groups[id] = fresh;
                    }
                }
                continue;
            }
            foreach (var byNode in placed.GroupBy(p => p.Assignment.Node.NodeId))
            {
                view.Apply(byNode.Key, [.. byNode.Select(p => p.Request)], epochs[byNode.Key]);
            }
            span?.SetTag("cloud.batch.placed", placed.Count).SetTag("cloud.attempts", attempt);
            return new BatchResult(assignments, [.. unplaced.Select(u => (u.Item, u.Failure))], attempt);
        }
        var lost = PlacementFailure.Because($"The batch's claim lost {attempts} races for capacity; try again.");
        await store.RecordAsync([.. items.Select(i => Decision(i, "batch", null, null, attempts, lost))], cancellationToken);
        return new BatchResult([], [.. items.Select(i => (i, lost))], attempts);
    }

    /// <summary>
    /// Where would this go, and why not on <paramref name="explainNode"/>? Weighs every node,
    /// claims nothing, and records the answer as a dry-run decision.
    /// </summary>
    public async Task<DryRunResult> DryRunAsync(string projectId, PlacementRequest request, string? explainNode, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var item = new BatchItem(Guid.Empty, projectId, request);
        var (group, groupFailure) = await LoadGroupAsync(request.Constraints.ServerGroupId, projectId, cancellationToken);
        await EnsureViewAsync(cancellationToken);
        NodeExplanation? explanation = null;
        if (explainNode is not null)
        {
            var node = view.FindByName(explainNode) ?? throw new KeyNotFoundException(explainNode);
            explanation = engine.Explain(node, request.WithGroup(group));
        }
        var outcome = engine.Evaluate(view.Nodes, request.WithGroup(group), scanAll: true);
        var failure = groupFailure ?? outcome.Failure;
        var decision = Decision(item, "dry-run", outcome, groupFailure is null ? outcome.Node : null, 0, failure);
        await store.RecordAsync([decision], cancellationToken);
        return new DryRunResult(outcome, failure, explanation, decision.Id);
    }

    /// <summary>Releases a consumer's claim; its nodes are reloaded on the next placement.</summary>
    public async Task ReleaseAsync(Guid consumerId, Guid? nodeId, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        var nodes = await ledger.ReleaseAsync(consumerId, transaction, cancellationToken);
        lock (_dirty)
        {
            // The caller commits later; reloading these nodes then is enough, since until
            // then the view only under-states what is free.
            _dirty.UnionWith(nodes);
            if (nodeId is { } id)
            {
                _dirty.Add(id);
            }
        }
    }

    /// <summary>Makes the next placement check the view against the database first (a node registered, changed or went down).</summary>
    public void InvalidateAll() => view.Expire();

    /// <summary>
    /// Claims and commits, with the statements that go in the claim's round trip. With no
    /// <paramref name="afterClaim"/>, the claim commits in that round trip; with one, it runs in
    /// the claim's transaction before the commit, and returning false rolls everything back.
    /// </summary>
    /// <returns>The claim's result (committed when it succeeded), or null when <paramref name="afterClaim"/> rolled it back.</returns>
    private async Task<ClaimResult?> ClaimAndCommitAsync(IReadOnlyList<Claim> claims, IReadOnlyList<NpgsqlBatchCommand> statements,
        Func<NpgsqlTransaction, Task<bool>>? afterClaim, CancellationToken cancellationToken)
    {
        if (afterClaim is null)
        {
            return await ledger.TryClaimAsync(claims, null, statements, cancellationToken);
        }
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var result = await ledger.TryClaimAsync(claims, transaction, statements, cancellationToken);
        if (!result.Succeeded || !await afterClaim(transaction))
        {
            await transaction.RollbackAsync(cancellationToken);
            return result.Succeeded ? null : result;
        }
        using (Activity.StartActivity("schedule.commit"))
        {
            await transaction.CommitAsync(cancellationToken);
        }
        return result;
    }

    /// <summary>When this replica last loaded its view whole (checks in between reload only the nodes that changed).</summary>
    internal DateTimeOffset ViewLoadedAt => view.LoadedAt;

    /// <summary>The nodes as the scheduler sees them now, loading them first if needed.</summary>
    public async Task<IReadOnlyList<NodeCapacity>> NodesAsync(CancellationToken cancellationToken)
    {
        await EnsureViewAsync(cancellationToken);
        return view.Nodes;
    }

    /// <summary>
    /// The nodes as the ledger has them at this moment: the view is checked against every node's
    /// generation first, whatever the refresh interval (one read of the versions, then the nodes
    /// that changed). For reports that must agree with the ledger rather than decide fast.
    /// </summary>
    public async Task<IReadOnlyList<NodeCapacity>> CurrentNodesAsync(CancellationToken cancellationToken)
    {
        await EnsureViewAsync(cancellationToken);
        await _refreshGate.WaitAsync(cancellationToken);
        try
        {
            var now = time.GetUtcNow();
            var expirations = view.Expirations;
            await RefreshNodesAsync(view.Changed(await ledger.LoadNodeVersionsAsync(cancellationToken)), cancellationToken);
            view.MarkChecked(now, expirations);
        }
        finally
        {
            _refreshGate.Release();
        }
        return view.Nodes;
    }

    private async Task<(ServerGroupState? Group, PlacementFailure? Failure)> LoadGroupAsync(Guid? groupId, string projectId, CancellationToken cancellationToken)
    {
        if (groupId is not { } id)
        {
            return (null, null);
        }
        var snapshot = await store.LoadGroupAsync(id, cancellationToken);
        // Another project's group is as good as missing: its existence is not the caller's business.
        if (snapshot is null || !string.Equals(snapshot.ProjectId, projectId, StringComparison.Ordinal))
        {
            return (null, PlacementFailure.Because($"Server group '{id}' does not exist."));
        }
        return (new ServerGroupState(snapshot.Id, snapshot.Name, snapshot.Policy, snapshot.MaxMembers, snapshot.Members, new Dictionary<Guid, int>(snapshot.MembersPerNode)), null);
    }

    private async Task<PlacementResult> FailAsync(BatchItem item, PlacementFailure failure, string kind, int attempts, CancellationToken cancellationToken)
    {
        var decision = Decision(item, kind, null, null, attempts, failure);
        await store.RecordAsync([decision], cancellationToken);
        return new PlacementResult(null, failure) { DecisionId = decision.Id };
    }

    private PlacementDecisionEntity Decision(BatchItem item, string kind, PlacementOutcome? outcome, NodeCapacity? node, int attempts, PlacementFailure? failure = null)
    {
        var rejected = outcome?.RejectedByFilter ?? failure?.RejectedByFilter ?? new Dictionary<string, int>();
        var constraints = item.Request.Constraints;
        var resources = item.Request.Resources;
        return new PlacementDecisionEntity
        {
            Id = Guid.CreateVersion7(time.GetUtcNow()),
            ConsumerId = item.ConsumerId == Guid.Empty ? null : item.ConsumerId,
            ProjectId = item.ProjectId,
            Kind = kind,
            Outcome = node is not null ? "placed" : "failed",
            NodeId = node?.NodeId,
            NodeName = node?.Name,
            NodesConsidered = outcome?.NodesConsidered ?? failure?.NodesConsidered ?? 0,
            Rejections = JsonSerializer.Serialize(rejected, Json),
            NearestMiss = node is null ? failure?.NearestMiss : null,
            Summary = node is not null
                ? $"Placed on {node.Name}: {outcome!.Feasible} of {outcome.NodesConsidered} nodes passed the filters."
                : failure?.Summary ?? "Not placed.",
            Request = JsonSerializer.Serialize(new DecisionRequest(resources.Vcpus, resources.MemoryMb, resources.DiskGb, constraints.AvailabilityZone,
                constraints.Aggregate, constraints.Hypervisor, constraints.RequiredTraits, constraints.ForbiddenTraits, constraints.ServerGroupId), Json),
            Attempts = attempts,
            CreatedAt = time.GetUtcNow(),
        };
    }

    /// <summary>What a decision records of the request.</summary>
    private sealed record DecisionRequest(int Vcpus, long MemoryMb, long DiskGb, string? AvailabilityZone, string? Aggregate, string? Hypervisor,
        IReadOnlyList<string> RequiredTraits, IReadOnlyList<string> ForbiddenTraits, Guid? ServerGroupId);

    /// <summary>
    /// Keeps the view current. A view older than the refresh interval is checked in the
    /// background (one refresh at a time) while requests go on deciding on it: every node's
    /// generation and state are read and the nodes that differ reloaded, which on 10,000 nodes
    /// costs a few milliseconds where a full reload took a third of a second and showed in the
    /// latency of the requests around it. The claim catches what an old view gets wrong. A view
    /// that is missing is loaded whole, and one that was expired (a node registered or went down,
    /// an aggregate changed) is checked, before deciding, by one caller while the others wait.
    /// A full reload still comes every <see cref="SchedulerOptions.FullReloadInterval"/>.
    /// </summary>
    private async Task EnsureViewAsync(CancellationToken cancellationToken)
    {
        if (view.LoadedAt == DateTimeOffset.MinValue || view.CheckedAt == DateTimeOffset.MinValue)
        {
            await _refreshGate.WaitAsync(cancellationToken);
            try
            {
                await RefreshIfStaleAsync(cancellationToken);
            }
            finally
            {
                _refreshGate.Release();
            }
        }
        else if (time.GetUtcNow() - view.CheckedAt >= options.Value.RefreshInterval
            && await _refreshGate.WaitAsync(TimeSpan.Zero, cancellationToken))
        {
            _ = Task.Run(async () =>
            {
                try
                {
                    // Not the caller's token: the refresh serves every request after this one.
                    await RefreshIfStaleAsync(CancellationToken.None);
                }
                catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
                {
                    // The next request tries again; until then the old view serves.
                    Log.ReloadFailed(logger, e);
                }
                finally
                {
                    _refreshGate.Release();
                }
            }, CancellationToken.None);
        }
        Guid[] dirty;
        lock (_dirty)
        {
            if (_dirty.Count == 0)
            {
                return;
            }
            dirty = [.. _dirty];
            _dirty.Clear();
        }
        await RefreshNodesAsync(dirty, cancellationToken);
    }

    private async Task RefreshIfStaleAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var expirations = view.Expirations;
        if (view.LoadedAt == DateTimeOffset.MinValue || now - view.LoadedAt >= options.Value.FullReloadInterval)
        {
            lock (_dirty)
            {
                _dirty.Clear();
            }
            view.Replace(await ledger.LoadAsync(cancellationToken), now, expirations);
            return;
        }
        if (view.CheckedAt != DateTimeOffset.MinValue && now - view.CheckedAt < options.Value.RefreshInterval)
        {
            return;
        }
        var changed = view.Changed(await ledger.LoadNodeVersionsAsync(cancellationToken));
        await RefreshNodesAsync(changed, cancellationToken);
        view.MarkChecked(now, expirations);
    }

    private async Task RefreshNodesAsync(IReadOnlyList<Guid> nodeIds, CancellationToken cancellationToken)
    {
        if (nodeIds.Count == 0)
        {
            return;
        }
        var loaded = (await ledger.LoadNodesAsync([.. nodeIds.Distinct()], cancellationToken)).ToDictionary(n => n.NodeId);
        foreach (var nodeId in nodeIds.Distinct())
        {
            // A node missing from the answer is gone: the view drops it.
            view.Set(nodeId, loaded.GetValueOrDefault(nodeId));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 6001, Level = LogLevel.Debug, Message = "A server group changed while {ConsumerId} was placed ({Violation}); deciding again")]
        public static partial void GroupRace(ILogger logger, Guid consumerId, string violation);

        [LoggerMessage(EventId = 6005, Level = LogLevel.Warning, Message = "Reloading the capacity view failed; the old view serves until the next try")]
        public static partial void ReloadFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 6004, Level = LogLevel.Warning, Message = "A group of {Count} placement(s) failed as a whole; none was placed")]
        public static partial void GroupFailed(ILogger logger, int count, Exception exception);
    }
}
