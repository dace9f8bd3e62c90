using Cloud.Controller.Data;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Scheduling;

/// <summary>What one pass over the nodes found: the best node (or none), and what the filters said.</summary>
internal sealed record PlacementOutcome(
    NodeCapacity? Node,
    int Index,
    double Score,
    int NodesConsidered,
    int Feasible,
    IReadOnlyDictionary<string, int> RejectedByFilter,
    string? NearestMiss,
    string? NearestMissNode,
    IReadOnlyDictionary<string, string> ExampleByFilter)
{
    public PlacementFailure? Failure => Node is not null ? null
        : new PlacementFailure(NodesConsidered, RejectedByFilter, NearestMiss) { NearestMissNode = NearestMissNode, ExampleByFilter = ExampleByFilter };
}

/// <summary>One filter's verdict on one node, for "why not node X?".</summary>
internal sealed record FilterCheck(string Filter, string? Rejection);

/// <summary>Every filter's verdict on one node, and its weights when it passed them all.</summary>
internal sealed record NodeExplanation(string Node, bool Eligible, IReadOnlyList<FilterCheck> Checks, IReadOnlyDictionary<string, double> Weights, double Score);

/// <summary>
/// Filters then weighs an in-memory list of nodes. Pure and allocation-light: no I/O, so the
/// scheduler's hot loop and its unit tests run the same code.
/// </summary>
internal sealed class PlacementEngine
{
    private readonly INodeFilter[] _filters;
    private readonly INodeWeigher[] _weighers;
    private readonly double[] _multipliers;
    private readonly int _maxFeasible;
    // Each replica starts its windows somewhere else: replicas that stepped through the same
    // windows in the same order would keep choosing the same nodes, and wait for each other's
    // claims on them.
    private int _start = Random.Shared.Next();

    public PlacementEngine(IEnumerable<INodeFilter> filters, IEnumerable<INodeWeigher> weighers, IOptions<SchedulerOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        // Distinct by name: the same filter registered twice would count its rejections twice.
        _filters = [.. filters.DistinctBy(f => f.Name).OrderBy(f => f.Order)];
        _weighers = [.. weighers.DistinctBy(w => w.Name)];
        _multipliers = [.. _weighers.Select(w => options.Value.Weights.TryGetValue(w.Name, out var m) ? m : w.DefaultMultiplier)];
        _maxFeasible = options.Value.MaxFeasibleNodes;
    }

    public IReadOnlyList<string> FilterNames => [.. _filters.Select(f => f.Name)];

    public IReadOnlyList<string> WeigherNames => [.. _weighers.Select(w => w.Name)];

    /// <summary>The simple form: resources only, every node considered.</summary>
    public (NodeCapacity? Node, PlacementFailure? Failure) Choose(IEnumerable<NodeCapacity> nodes, ResourceRequest request)
    {
        var outcome = Evaluate([.. nodes], new PlacementRequest(request), scanAll: true);
        return (outcome.Node, outcome.Failure);
    }

    /// <summary>
    /// One pass. Unless <paramref name="scanAll"/>, it stops once
    /// <see cref="SchedulerOptions.MaxFeasibleNodes"/> nodes passed the filters, starting where
    /// the previous pass stopped, so that consecutive requests look at different nodes
    /// (kube-scheduler's percentageOfNodesToScore). The counts then cover the nodes looked at.
    /// </summary>
    public PlacementOutcome Evaluate(IReadOnlyList<NodeCapacity> nodes, PlacementRequest request, bool scanAll = false)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        ArgumentNullException.ThrowIfNull(request);
        var count = nodes.Count;
        var limit = scanAll || _maxFeasible <= 0 ? int.MaxValue : _maxFeasible;
        // Successive passes look at successive windows, not windows shifted by one node: two
        // requests deciding at once then rarely want the same node, and rarely race for it.
        var start = count == 0 || limit == int.MaxValue ? 0 : (int)((ulong)(uint)Interlocked.Increment(ref _start) * (ulong)limit % (uint)count);
        var rejected = new int[_filters.Length];
        var examples = new string?[_filters.Length];
        string? nearestMiss = null;
        string? nearestNode = null;
        var nearestStage = -1;
        var nearestShortfall = double.PositiveInfinity;
        NodeCapacity? best = null;
        var bestIndex = -1;
        var bestScore = double.NegativeInfinity;
        var considered = 0;
        var feasible = 0;
        for (var k = 0; k < count && feasible < limit; k++)
        {
            var index = start + k;
            if (index >= count)
            {
                index -= count;
            }
            var node = nodes[index];
            considered++;
            var stage = Reject(node, request, out var reason);
            if (reason is not null)
            {
                rejected[stage]++;
                examples[stage] ??= reason;
                // The nearest miss got furthest through the filters; among nodes short of
                // resources, the one short by the least.
                var shortfall = _filters[stage] is ResourceFitFilter ? Shortfall(node, request) : 0;
                if (stage > nearestStage || (stage == nearestStage && shortfall < nearestShortfall))
                {
                    (nearestStage, nearestShortfall, nearestMiss, nearestNode) = (stage, shortfall, reason, node.Name);
                }
                continue;
            }
            feasible++;
            var score = Score(node, request);
            if (score > bestScore)
            {
                (best, bestIndex, bestScore) = (node, index, score);
            }
        }

        var byFilter = new Dictionary<string, int>();
        var exampleByFilter = new Dictionary<string, string>();
        for (var i = 0; i < _filters.Length; i++)
        {
            if (rejected[i] > 0)
            {
                byFilter[_filters[i].Name] = rejected[i];
                exampleByFilter[_filters[i].Name] = examples[i]!;
            }
        }
        return new PlacementOutcome(best, bestIndex, best is null ? 0 : bestScore, considered, feasible, byFilter,
            best is null ? nearestMiss : null, best is null ? nearestNode : null, exampleByFilter);
    }

    /// <summary>Every filter's verdict on <paramref name="node"/> (not only the first refusal) and its weights.</summary>
    public NodeExplanation Explain(NodeCapacity node, PlacementRequest request)
    {
        var checks = _filters.Select(f => new FilterCheck(f.Name, f.Reject(node, request))).ToList();
        var eligible = checks.All(c => c.Rejection is null);
        var weights = new Dictionary<string, double>();
        for (var i = 0; i < _weighers.Length; i++)
        {
            weights[_weighers[i].Name] = _weighers[i].Weigh(node, request) * _multipliers[i];
        }
        return new NodeExplanation(node.Name, eligible, checks, weights, eligible ? weights.Values.Sum() : 0);
    }

    private int Reject(NodeCapacity node, PlacementRequest request, out string? reason)
    {
        for (var i = 0; i < _filters.Length; i++)
        {
            reason = _filters[i].Reject(node, request);
            if (reason is not null)
            {
                return i;
            }
        }
        reason = null;
        return -1;
    }

    private double Score(NodeCapacity node, PlacementRequest request)
    {
        var score = 0.0;
        for (var i = 0; i < _weighers.Length; i++)
        {
            score += _weighers[i].Weigh(node, request) * _multipliers[i];
        }
        return score;
    }

    /// <summary>How far short the node falls, as the largest fraction of an asked amount it lacks.</summary>
    private static double Shortfall(NodeCapacity node, PlacementRequest request)
    {
        var worst = 0.0;
        for (var i = 0; i < request.Classes.Length; i++)
        {
            var amount = request.Amounts[i];
            var missing = amount - node.Free(request.Classes[i]);
            if (missing > 0)
            {
                worst = Math.Max(worst, (double)missing / amount);
            }
        }
        return worst;
    }
}
