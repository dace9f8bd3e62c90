namespace Cloud.Controller.Scheduling;

/// <summary>The standard resource classes of the ledger.</summary>
internal static class ResourceClasses
{
    public const string Vcpu = "VCPU";
    public const string MemoryMb = "MEMORY_MB";
    public const string DiskGb = "DISK_GB";

    public static readonly IReadOnlyList<string> All = [Vcpu, MemoryMb, DiskGb];
}

/// <summary>What one VM asks of a node.</summary>
internal sealed record ResourceRequest(int Vcpus, long MemoryMb, long DiskGb)
{
    /// <summary>The amounts per resource class; a zero disk asks for no DISK_GB at all.</summary>
    public IReadOnlyDictionary<string, long> ToAmounts()
    {
        var amounts = new Dictionary<string, long>(3)
        {
            [ResourceClasses.Vcpu] = Vcpus,
            [ResourceClasses.MemoryMb] = MemoryMb,
        };
        if (DiskGb > 0)
        {
            amounts[ResourceClasses.DiskGb] = DiskGb;
        }
        return amounts;
    }
}
