namespace Cloud.Controller.Data;

/// <summary>A disk image VMs boot from.</summary>
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
}
