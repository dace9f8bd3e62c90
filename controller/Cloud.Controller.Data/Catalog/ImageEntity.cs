namespace Cloud.Controller.Data;

/// <summary>A disk image VMs boot from: seeded by operators on the nodes, or uploaded by a tenant.</summary>
internal sealed class ImageEntity
{
    public string Id { get; set; } = "";

    public string Name { get; set; } = "";

    /// <summary>raw or qcow2.</summary>
    public string Format { get; set; } = "";

    /// <summary>Lowercase hex SHA-256 of the image file, checked by the agent before use.</summary>
    public string Sha256 { get; set; } = "";

    public long SizeBytes { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>The tenant that owns the image; "admin" for what operators seed.</summary>
    public string ProjectId { get; set; } = "admin";

    /// <summary>private (the owner only), shared (the owner and its members) or public (every tenant).</summary>
    public string Visibility { get; set; } = ImageVisibilities.Public;

    /// <summary>QUEUED, SAVING, ACTIVE, ERROR or DELETED (<see cref="ImageStates"/>).</summary>
    public string State { get; set; } = ImageStates.Active;

    /// <summary>A VM made from the image needs a flavor with at least this disk.</summary>
    public long MinDiskGb { get; set; }

    /// <summary>The guest-visible size of the disk (a qcow2's virtual size, a raw file's length).</summary>
    public long VirtualSizeBytes { get; set; }

    /// <summary>
    /// True when the controller's image store holds the bytes (an upload): agents that lack the
    /// image pull it. False for images seeded straight into the nodes' stores.
    /// </summary>
    public bool Stored { get; set; }

    /// <summary>The upload under way (state SAVING); only it may finish the image.</summary>
    public Guid? UploadId { get; set; }

    /// <summary>Why the last upload was refused (state ERROR).</summary>
    public string? Error { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>The key of the create request, so that a retried create answers the same image.</summary>
    public string? IdempotencyKey { get; set; }
}

/// <summary>The life of an image.</summary>
internal static class ImageStates
{
    public const string Queued = "QUEUED";
    public const string Saving = "SAVING";
    public const string Active = "ACTIVE";
    public const string Error = "ERROR";
    public const string Deleted = "DELETED";
}

internal static class ImageVisibilities
{
    public const string Private = "private";
    public const string Shared = "shared";
    public const string Public = "public";
}
