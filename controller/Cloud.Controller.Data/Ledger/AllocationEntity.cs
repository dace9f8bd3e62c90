namespace Cloud.Controller.Data;

/// <summary>An amount of one resource class that a consumer holds on a node.</summary>
internal sealed class AllocationEntity
{
    public Guid ConsumerId { get; set; }

    public Guid NodeId { get; set; }

    public string ResourceClass { get; set; } = "";

    /// <summary>Always positive: a consumer that holds nothing of a class has no row for it.</summary>
    public long Used { get; set; }
}
