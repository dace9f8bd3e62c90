namespace Cloud.Controller.Data;

/// <summary>
/// What a node offers of one resource class. Capacity is floor((total - reserved) * ratio);
/// a single allocation must lie in [min_unit, max_unit] and be a multiple of step_size.
/// </summary>
internal sealed class InventoryEntity
{
    public Guid NodeId { get; set; }

    /// <summary>VCPU, MEMORY_MB or DISK_GB.</summary>
    public string ResourceClass { get; set; } = "";

    public long Total { get; set; }

    public long Reserved { get; set; }

    public double AllocationRatio { get; set; } = 1.0;

    public long MinUnit { get; set; } = 1;

    public long MaxUnit { get; set; }

    public long StepSize { get; set; } = 1;
}
