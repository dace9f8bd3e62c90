namespace Cloud.Controller.Data;

/// <summary>
/// A VM as tenants see it. Its sizes are copied from the flavor at creation. It is also the
/// ledger's consumer of the same id while it holds capacity on <see cref="NodeId"/>.
/// </summary>
internal sealed class VmEntity
{
    public Guid Id { get; set; }

    public string ProjectId { get; set; } = "";

    public string Name { get; set; } = "";

    public string FlavorName { get; set; } = "";

    public string? ImageId { get; set; }

    /// <summary>PENDING, CREATING, RUNNING, STOPPED, ERROR, DELETING or DELETED.</summary>
    public string State { get; set; } = "PENDING";

    public Guid? NodeId { get; set; }

    public int Vcpus { get; set; }

    public long MemoryMb { get; set; }

    public long DiskGb { get; set; }

    public Dictionary<string, string> Labels { get; set; } = [];

    public string? UserData { get; set; }

    public string? Error { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>
    /// PostgreSQL's xmin: it changes with every write to the row, including the plain-SQL ones
    /// of the claim path, so an EF update based on a stale read is refused.
    /// </summary>
    public uint Version { get; set; }
}
