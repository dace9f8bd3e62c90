namespace Cloud.Controller.Data;

/// <summary>A VM size tenants choose from. A VM copies its sizes, so a flavor can change later.</summary>
internal sealed class FlavorEntity
{
    public string Name { get; set; } = "";

    public int Vcpus { get; set; }

    public long MemoryMb { get; set; }

    public long DiskGb { get; set; }

    public bool IsPublic { get; set; }

    public DateTimeOffset CreatedAt { get; set; }
}
