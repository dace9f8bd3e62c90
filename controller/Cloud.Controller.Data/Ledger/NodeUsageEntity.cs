namespace Cloud.Controller.Data;

/// <summary>
/// How much of one resource class a node's allocations add up to: a running total that
/// triggers on <c>allocations</c> keep, so that a claim checks capacity by reading one row per
/// node and class instead of summing every allocation on the node.
/// </summary>
internal sealed class NodeUsageEntity
{
    public Guid NodeId { get; set; }

    public string ResourceClass { get; set; } = "";

    /// <summary>The sum of the node's allocations of the class; 0 once they are all released.</summary>
    public long Used { get; set; }
}
