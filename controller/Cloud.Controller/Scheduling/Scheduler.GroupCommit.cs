using System.Diagnostics;
using System.Threading.Channels;
using Cloud.Controller.Data;
using Npgsql;

namespace Cloud.Controller.Scheduling;

/// <summary>
/// Group commit of one-VM placements (docs/design/006-scheduling.md, "Group commit"). Requests
/// that arrive while a group is being claimed wait in a channel; the claim loop then takes all
/// of them (up to <see cref="SchedulerOptions.GroupCommitMaxSize"/>), decides them in one pass
/// over the view, claims them in one transaction (one round trip for claims, decisions, the
/// callers' statements and the commit, so one WAL flush) and completes each caller with its
/// own result. The loop never waits for more requests than are queued: an idle replica places a
/// lone request at once.
/// </summary>
internal sealed partial class Scheduler
{
    private readonly Channel<PendingPlacement> _queue = Channel.CreateUnbounded<PendingPlacement>(
        new UnboundedChannelOptions { SingleReader = false, AllowSynchronousContinuations = false });

    private volatile bool _claimLoopRunning;
    private int _queued;

    /// <summary>Requests waiting for the claim loop (for tests and diagnostics).</summary>
    internal int QueuedPlacements => Volatile.Read(ref _queued);

    /// <summary>A one-VM request waiting for the claim loop, and what became of it.</summary>
    private sealed class PendingPlacement(
        BatchItem item,
        Func<NodeCapacity, NpgsqlBatchCommand>? alongside,
        Func<NpgsqlTransaction, NodeCapacity, CancellationToken, Task>? inTransaction)
    {
        private const int Queued = 0;
        private const int Taken = 1;
        private const int Cancelled = 2;

        private int _state;

        public BatchItem Item { get; } = item;

        public Func<NodeCapacity, NpgsqlBatchCommand>? Alongside { get; } = alongside;

        public Func<NpgsqlTransaction, NodeCapacity, CancellationToken, Task>? InTransaction { get; } = inTransaction;

        public TaskCompletionSource<PlacementResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The caller's span: the group's span is the child of the first request's and links the others'.</summary>
        public ActivityContext Caller { get; } = System.Diagnostics.Activity.Current?.Context ?? default;

        /// <summary>Claim attempts so far, as the decision records them.</summary>
        public int Attempts { get; set; } = 1;

        /// <summary>The node decided on, kept when a retry of the group does not concern it.</summary>
        public NodeCapacity? Node { get; set; }

        public PlacementOutcome? Outcome { get; set; }

        /// <summary>The loop takes a request once; one whose caller gave up while it was queued is skipped.</summary>
        public bool TryTake() => Interlocked.CompareExchange(ref _state, Taken, Queued) == Queued;

        /// <summary>A caller that gives up while queued is answered at once and nothing is written for it.</summary>
        public void CancelIfQueued(CancellationToken cancellationToken)
        {
            if (Interlocked.CompareExchange(ref _state, Cancelled, Queued) == Queued)
            {
                Completion.TrySetCanceled(cancellationToken);
            }
        }
    }

    /// <summary>Queues a request for the claim loop; null when the loop is not running (the caller places it alone).</summary>
    private async Task<PlacementResult?> TryPlaceInGroupAsync(
        BatchItem item,
        Func<NodeCapacity, NpgsqlBatchCommand>? alongside,
        Func<NpgsqlTransaction, NodeCapacity, CancellationToken, Task>? inTransaction,
        CancellationToken cancellationToken)
    {
        if (!_claimLoopRunning || options.Value.GroupCommitMaxSize == 0)
        {
            return null;
        }
        var pending = new PendingPlacement(item, alongside, inTransaction);
        await using var registration = cancellationToken.UnsafeRegister(static (state, token) => ((PendingPlacement)state!).CancelIfQueued(token), pending);
        Interlocked.Increment(ref _queued);
        if (!_queue.Writer.TryWrite(pending))
        {
            // The loop has stopped since: place it alone.
            Interlocked.Decrement(ref _queued);
            return null;
        }
        return await pending.Completion.Task;
    }

    /// <summary>
    /// Requests queue from now on. Called as the loop's host starts, before the loop itself
    /// runs (on a thread of its own), so that no request made after the start is placed alone.
    /// </summary>
    internal void OpenClaimLoop() => _claimLoopRunning = !_queue.Reader.Completion.IsCompleted;

    /// <summary>
    /// The claim loop (<see cref="ClaimLoop"/> hosts it): takes every queued request, places the
    /// group, and goes back for the next. Requests still queued when it stops are cancelled.
    /// </summary>
    internal async Task RunClaimLoopAsync(CancellationToken stoppingToken)
    {
        OpenClaimLoop();
        try
        {
            await Task.WhenAll(Enumerable.Range(0, Math.Max(1, options.Value.ClaimLoops)).Select(_ => RunClaimWorkerAsync(stoppingToken)));
        }
        finally
        {
            _claimLoopRunning = false;
            _queue.Writer.TryComplete();
            while (_queue.Reader.TryRead(out var pending))
            {
                Interlocked.Decrement(ref _queued);
                if (pending.TryTake())
                {
                    pending.Completion.TrySetException(new OperationCanceledException("The scheduler is stopping; the request was not placed."));
                }
            }
        }
    }

    /// <summary>
    /// One worker of the loop. With several, a group is decided and claimed while the one before
    /// waits for its commit; each takes whatever is queued when it comes back.
    /// </summary>
    private async Task RunClaimWorkerAsync(CancellationToken stoppingToken)
    {
        var reader = _queue.Reader;
        var group = new List<PendingPlacement>();
        try
        {
            while (await reader.WaitToReadAsync(stoppingToken))
            {
                group.Clear();
                var max = Math.Max(1, options.Value.GroupCommitMaxSize);
                while (group.Count < max && reader.TryRead(out var pending))
                {
                    Interlocked.Decrement(ref _queued);
                    if (pending.TryTake())
                    {
                        group.Add(pending);
                    }
                }
                if (group.Count == 0)
                {
                    continue;
                }
                try
                {
                    await PlaceGroupAsync(group, stoppingToken);
                }
                catch (Exception e)
                {
                    // The database or the process failed the whole group: every caller hears it,
                    // as each would have placing alone. None was acknowledged.
                    Log.GroupFailed(logger, group.Count, e);
                    foreach (var pending in group)
                    {
                        pending.Completion.TrySetException(e);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Places a group in one pass and one transaction. A request that does not fit fails alone; a
    /// claim refused on some nodes reloads them and decides again only the requests placed there;
    /// a caller's statement that throws fails that caller alone and the rest are claimed again.
    /// </summary>
    private async Task PlaceGroupAsync(List<PendingPlacement> group, CancellationToken cancellationToken)
    {
        // A group serves requests of several traces: it continues the first one's (so that a
        // lone request, the usual case on an idle replica, has its claim's SQL in its own trace)
        // and links the others.
        List<ActivityLink>? links = null;
        if (Activity.HasListeners())
        {
            for (var k = 1; k < group.Count; k++)
            {
                if (group[k].Caller != default)
                {
                    (links ??= []).Add(new ActivityLink(group[k].Caller));
                }
            }
        }
        using var span = Activity.StartActivity("schedule.group", ActivityKind.Internal, group[0].Caller, links: links);
        span?.SetTag("cloud.group.size", group.Count);
        var failed = new List<(PendingPlacement Pending, PlacementDecisionEntity Decision, PlacementFailure Failure)>();
        var live = group;
        var maxAttempts = options.Value.MaxClaimAttempts;
        var rounds = 0;
        while (live.Count > 0)
        {
            rounds++;
            await EnsureViewAsync(cancellationToken);
            List<PendingPlacement> placed;
            using (Activity.StartActivity("schedule.decide"))
            {
                placed = Decide(live, failed);
            }
            if (placed.Count == 0)
            {
                break;
            }

            var epochs = placed.Select(p => p.Node!.NodeId).Distinct().ToDictionary(id => id, view.EpochOf);
            var claims = placed.Select(p => new Claim(p.Item.ConsumerId, ConsumerKinds.Vm, p.Item.ProjectId, p.Node!.NodeId,
                Claim.AnyGeneration, p.Item.Request.Resources.ToAmounts())).ToList();
            var decisions = placed.Select(p => Decision(p.Item, "place", p.Outcome, p.Node, p.Attempts)).ToList();
            var alongside = new List<NpgsqlBatchCommand> { PlacementStore.RecordCommand([.. decisions, .. failed.Select(f => f.Decision)]) };
            alongside.AddRange(placed.Where(p => p.Alongside is not null).Select(p => p.Alongside!(p.Node!)));

            // Without callers' callbacks (the usual case), the group commits in its claim's round trip.
            PendingPlacement? culprit = null;
            Func<NpgsqlTransaction, Task<bool>>? afterClaim = placed.Any(p => p.InTransaction is not null)
                ? async transaction => (culprit = await RunCallbacksAsync(placed, transaction, cancellationToken)) is null
                : null;
            var result = await ClaimAndCommitAsync(claims, alongside, afterClaim, cancellationToken);
            if (result is null)
            {
                live = [.. placed.Where(p => p != culprit)];
                continue;
            }
            if (!result.Succeeded)
            {
                await RefreshNodesAsync(result.ConflictingNodeIds, cancellationToken);
                var refused = result.ConflictingNodeIds.ToHashSet();
                live = [];
                foreach (var pending in placed)
                {
                    if (!refused.Contains(pending.Node!.NodeId))
                    {
                        live.Add(pending);
                    }
                    else if (++pending.Attempts <= maxAttempts)
                    {
                        pending.Node = null;
                        live.Add(pending);
                    }
                    else
                    {
                        var lost = PlacementFailure.Because($"The claim lost {maxAttempts} races for capacity; try again.");
                        failed.Add((pending, Decision(pending.Item, "place", null, null, maxAttempts, lost), lost));
                    }
                }
                continue;
            }

            foreach (var byNode in placed.GroupBy(p => p.Node!.NodeId))
            {
                view.Apply(byNode.Key, [.. byNode.Select(p => p.Item.Request)], epochs[byNode.Key]);
            }
            for (var k = 0; k < placed.Count; k++)
            {
                placed[k].Completion.TrySetResult(new PlacementResult(placed[k].Node, null) { DecisionId = decisions[k].Id });
            }
            CompleteFailed(failed);
            span?.SetTag("cloud.group.placed", placed.Count).SetTag("cloud.group.rounds", rounds);
            return;
        }
        if (failed.Count > 0)
        {
            await store.RecordAsync([.. failed.Select(f => f.Decision)], cancellationToken);
            CompleteFailed(failed);
        }
        span?.SetTag("cloud.group.placed", 0).SetTag("cloud.group.rounds", rounds);
    }

    /// <summary>
    /// One pass: every request keeps the node it was placed on in an earlier round of the group
    /// (unless that node left the view), the others are decided on a copy of the view to which
    /// the group's earlier placements are added. Requests that fit nowhere move to
    /// <paramref name="failed"/>.
    /// </summary>
    private List<PendingPlacement> Decide(List<PendingPlacement> live, List<(PendingPlacement, PlacementDecisionEntity, PlacementFailure)> failed)
    {
        var nodes = new NodesWithPlacements(view.Nodes);
        Dictionary<Guid, int>? index = null;
        var placed = new List<PendingPlacement>(live.Count);
        foreach (var pending in live)
        {
            if (pending.Node is { } kept)
            {
                index ??= nodes.Select((n, i) => (n.NodeId, i)).ToDictionary(x => x.NodeId, x => x.i);
                if (index.TryGetValue(kept.NodeId, out var at))
                {
                    nodes[at] = CapacityView.WithUsage(nodes[at], [pending.Item.Request]);
                    placed.Add(pending);
                    continue;
                }
                pending.Node = null;
            }
            var outcome = engine.Evaluate(nodes, pending.Item.Request);
            if (outcome.Node is not { } node)
            {
                var failure = outcome.Failure!;
                failed.Add((pending, Decision(pending.Item, "place", outcome, null, pending.Attempts, failure), failure));
                continue;
            }
            // Later requests of the group see this one.
            nodes[outcome.Index] = CapacityView.WithUsage(node, [pending.Item.Request]);
            pending.Node = node;
            pending.Outcome = outcome;
            placed.Add(pending);
        }
        return placed;
    }

    /// <summary>
    /// Runs the callers' own work in the group's transaction, one after the other. Returns the
    /// request whose work threw (it has been failed with that exception), or null. Errors of the
    /// connection or the database as a whole are not one caller's: they fail the group.
    /// </summary>
    private static async Task<PendingPlacement?> RunCallbacksAsync(List<PendingPlacement> placed, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        foreach (var pending in placed)
        {
            if (pending.InTransaction is null)
            {
                continue;
            }
            try
            {
                await pending.InTransaction(transaction, pending.Node!, cancellationToken);
            }
            catch (Exception e) when (!IsGroupWide(e, cancellationToken))
            {
                pending.Completion.TrySetException(e);
                return pending;
            }
        }
        return null;
    }

    private static bool IsGroupWide(Exception e, CancellationToken cancellationToken)
        => (e is OperationCanceledException && cancellationToken.IsCancellationRequested)
            || (e is NpgsqlException && e is not PostgresException)
            || (e is PostgresException p && (p.SqlState.StartsWith("08", StringComparison.Ordinal) || p.SqlState.StartsWith("57", StringComparison.Ordinal)));

    private static void CompleteFailed(List<(PendingPlacement Pending, PlacementDecisionEntity Decision, PlacementFailure Failure)> failed)
    {
        foreach (var (pending, decision, failure) in failed)
        {
            pending.Completion.TrySetResult(new PlacementResult(null, failure) { DecisionId = decision.Id });
        }
    }
}

/// <summary>
/// The view's nodes with a group's placements so far added to the few nodes they went to: a
/// group of one or two requests would otherwise copy the whole view (80 KB at 10,000 nodes)
/// for every pass, which was most of what a placement allocated.
/// </summary>
internal sealed class NodesWithPlacements(IReadOnlyList<NodeCapacity> nodes) : IReadOnlyList<NodeCapacity>
{
    private readonly Dictionary<int, NodeCapacity> _changed = [];

    public int Count => nodes.Count;

    public NodeCapacity this[int index]
    {
        get => _changed.Count != 0 && _changed.TryGetValue(index, out var node) ? node : nodes[index];
        set => _changed[index] = value;
    }

    public IEnumerator<NodeCapacity> GetEnumerator()
    {
        for (var i = 0; i < Count; i++)
        {
            yield return this[i];
        }
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>Hosts the scheduler's claim loop, so that one-VM placements on this replica are committed in groups.</summary>
internal sealed class ClaimLoop(Scheduler scheduler) : BackgroundService
{
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        scheduler.OpenClaimLoop();
        return base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => scheduler.RunClaimLoopAsync(stoppingToken);
}
