namespace Cloud.Controller.Scheduling;

/// <summary>
/// Why a request could not be placed: how many nodes each filter turned away, with the reason
/// the closest node gave. Readable through the API as the failed operation's details.
/// </summary>
internal sealed record PlacementFailure(int NodesConsidered, IReadOnlyDictionary<string, int> RejectedByFilter, string? NearestMiss)
{
    public string Summary
    {
        get
        {
            if (NodesConsidered == 0)
            {
                return "No valid host: no node is registered.";
            }
            var parts = string.Join(", ", RejectedByFilter.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Value} rejected by {kv.Key}"));
            var nearest = NearestMiss is null ? "" : $" Nearest miss: {NearestMiss}.";
            return $"No valid host among {NodesConsidered} nodes: {parts}.{nearest}";
        }
    }
}
