namespace Cloud.Controller.Scheduling;

/// <summary>
/// Why a request could not be placed: how many nodes each filter turned away, with the reason
/// the closest node gave. Readable through the API as the failed operation's details.
/// </summary>
internal sealed record PlacementFailure(int NodesConsidered, IReadOnlyDictionary<string, int> RejectedByFilter, string? NearestMiss)
{
    /// <summary>The node that got furthest through the filters.</summary>
    public string? NearestMissNode { get; init; }

    /// <summary>One reason per filter, from the first node it rejected.</summary>
    public IReadOnlyDictionary<string, string> ExampleByFilter { get; init; } = new Dictionary<string, string>();

    /// <summary>A reason that is not about nodes (an unknown server group...), which then is the whole summary.</summary>
    public string? Reason { get; init; }

    public static PlacementFailure Because(string reason) => new(0, new Dictionary<string, int>(), null) { Reason = reason };

    public string Summary
    {
        get
        {
            if (Reason is not null)
            {
                return Reason;
            }
            if (NodesConsidered == 0)
            {
                return "No valid host: no node is registered.";
            }
            var parts = string.Join(", ", RejectedByFilter.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Value} rejected by {kv.Key}"));
            var nearest = NearestMiss is null ? "" : $" Nearest miss: {NearestMiss}.";
            return $"No valid host among {NodesConsidered} nodes: {parts}.{nearest}";
        }
    }
}
