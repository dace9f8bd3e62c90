using System.Diagnostics;
using Cloud.Controller.Data;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cloud.Controller.Scheduling;

/// <summary>The outcome of placing one VM: the node it went to, or why none would take it.</summary>
internal sealed record PlacementResult(NodeCapacity? Node, PlacementFailure? Failure)
{
    public bool Placed => Node is not null;
}

/// <summary>
/// Places VMs on nodes. Filters and weighs an in-memory view of capacity, then commits the claim
/// in PostgreSQL, where the node's generation makes it optimistic: a claim based on a stale
/// view is refused, the node is reloaded, and the placement is tried again. No lock is held
/// while deciding, so any number of controller replicas can place at once.
/// </summary>
internal sealed class Scheduler(
    CapacityLedger ledger,
    NpgsqlDataSource dataSource,
    IEnumerable<INodeFilter> filters,
    IOptions<SchedulerOptions> options,
    TimeProvider time)
{
    internal static readonly ActivitySource Activity = new("Cloud.Scheduler");

    private readonly INodeFilter[] _filters = [.. filters];
    private readonly SemaphoreSlim _refreshGate = new(1, 1);
    private Dictionary<Guid, NodeCapacity> _view = [];
    private DateTimeOffset _loadedAt = DateTimeOffset.MinValue;

    /// <summary>
    /// Places one consumer and claims its resources. <paramref name="inTransaction"/> runs in the
    /// claim's transaction, so that the VM row records its node atomically with the allocation.
    /// </summary>
    public async Task<PlacementResult> PlaceAsync(
        Guid consumerId,
        string projectId,
        ResourceRequest request,
        Func<NpgsqlTransaction, NodeCapacity, CancellationToken, Task> inTransaction,
        CancellationToken cancellationToken)
    {
        using var span = Activity.StartActivity("schedule");
        span?.SetTag("cloud.consumer_id", consumerId);
        var excluded = new HashSet<Guid>();
        for (var attempt = 1; attempt <= options.Value.MaxClaimAttempts; attempt++)
        {
            var view = await GetViewAsync(cancellationToken).ConfigureAwait(false);
            var (node, failure) = Choose(view.Values.Where(n => !excluded.Contains(n.NodeId)), request);
            if (node is null)
            {
                span?.SetTag("cloud.placed", false);
                return new PlacementResult(null, failure);
            }

            var claim = new Claim(consumerId, "vm", projectId, node.NodeId, node.Generation, request.ToAmounts());
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var result = await ledger.TryClaimAsync([claim], transaction, cancellationToken).ConfigureAwait(false);
            if (result.Succeeded)
            {
                await inTransaction(transaction, node, cancellationToken).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                Apply(node.NodeId, request, +1);
                span?.SetTag("cloud.node", node.Name).SetTag("cloud.attempts", attempt);
                return new PlacementResult(node, null);
            }

            await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
            await RefreshNodeAsync(node.NodeId, cancellationToken).ConfigureAwait(false);
        }
        return new PlacementResult(null, new PlacementFailure(_view.Count, new Dictionary<string, int> { ["claim-conflict"] = 1 },
            $"the claim lost {options.Value.MaxClaimAttempts} races for capacity; try again"));
    }

    /// <summary>Releases a consumer's claim and returns its resources to the view.</summary>
    public async Task ReleaseAsync(Guid consumerId, Guid? nodeId, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await ledger.ReleaseAsync(consumerId, transaction, cancellationToken).ConfigureAwait(false);
        if (nodeId is { } id)
        {
            // The generation moved; reload the node on its next use rather than guess.
            Invalidate(id);
        }
    }

    /// <summary>Filters then weighs; pure over the view, so it is cheap and testable.</summary>
    internal (NodeCapacity? Node, PlacementFailure? Failure) Choose(IEnumerable<NodeCapacity> nodes, ResourceRequest request)
    {
        var rejected = new Dictionary<string, int>();
        string? nearestMiss = null;
        var considered = 0;
        NodeCapacity? best = null;
        var bestScore = double.NegativeInfinity;
        var pack = options.Value.Policy == "pack";
        foreach (var node in nodes)
        {
            considered++;
            string? reason = null;
            foreach (var filter in _filters)
            {
                reason = filter.Reject(node, request);
                if (reason is not null)
                {
                    rejected[filter.Name] = rejected.GetValueOrDefault(filter.Name) + 1;
                    // The last filter to reject is the one the node got furthest through.
                    nearestMiss = filter == _filters[^1] || nearestMiss is null ? reason : nearestMiss;
                    break;
                }
            }
            if (reason is not null)
            {
                continue;
            }
            var score = FreeFraction(node);
            score = pack ? -score : score;
            if (score > bestScore)
            {
                best = node;
                bestScore = score;
            }
        }
        return best is not null ? (best, null) : (null, new PlacementFailure(considered, rejected, nearestMiss));
    }

    /// <summary>The tighter of the node's free CPU and memory fractions.</summary>
    private static double FreeFraction(NodeCapacity node)
    {
        var fraction = 1.0;
        foreach (var resourceClass in (ReadOnlySpan<string>)[ResourceClasses.Vcpu, ResourceClasses.MemoryMb])
        {
            if (node.Inventories.TryGetValue(resourceClass, out var inventory))
            {
                var capacity = (inventory.Total - inventory.Reserved) * inventory.AllocationRatio;
                fraction = Math.Min(fraction, capacity <= 0 ? 0 : node.Free(resourceClass) / capacity);
            }
        }
        return fraction;
    }

    private async Task<IReadOnlyDictionary<Guid, NodeCapacity>> GetViewAsync(CancellationToken cancellationToken)
    {
        if (time.GetUtcNow() - _loadedAt < options.Value.RefreshInterval)
        {
            return _view;
        }
        await _refreshGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (time.GetUtcNow() - _loadedAt >= options.Value.RefreshInterval)
            {
                var nodes = await ledger.LoadAsync(cancellationToken).ConfigureAwait(false);
                _view = nodes.ToDictionary(n => n.NodeId);
                _loadedAt = time.GetUtcNow();
            }
            return _view;
        }
        finally
        {
            _refreshGate.Release();
        }
    }

    /// <summary>Forces a full reload on the next placement (a node registered, changed or went down).</summary>
    public void InvalidateAll() => _loadedAt = DateTimeOffset.MinValue;

    private void Invalidate(Guid nodeId)
    {
        var view = new Dictionary<Guid, NodeCapacity>(_view);
        view.Remove(nodeId);
        _view = view;
        InvalidateAll();
    }

    private async Task RefreshNodeAsync(Guid nodeId, CancellationToken cancellationToken)
    {
        var fresh = await ledger.LoadNodeAsync(nodeId, cancellationToken).ConfigureAwait(false);
        var view = new Dictionary<Guid, NodeCapacity>(_view);
        if (fresh is null)
        {
            view.Remove(nodeId);
        }
        else
        {
            view[nodeId] = fresh;
        }
        _view = view;
    }

    /// <summary>Applies our own committed claim to the view: its usage and the generation it bumped.</summary>
    private void Apply(Guid nodeId, ResourceRequest request, int sign)
    {
        var view = new Dictionary<Guid, NodeCapacity>(_view);
        if (!view.TryGetValue(nodeId, out var node))
        {
            return;
        }
        var used = new Dictionary<string, long>(node.Used);
        foreach (var (resourceClass, amount) in request.ToAmounts())
        {
            used[resourceClass] = used.GetValueOrDefault(resourceClass) + (sign * amount);
        }
        view[nodeId] = node with { Used = used, Generation = node.Generation + 1 };
        _view = view;
    }
}
