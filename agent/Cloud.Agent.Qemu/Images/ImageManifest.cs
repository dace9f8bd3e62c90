namespace Cloud.Agent.Qemu;

/// <summary>What an image store entry holds.</summary>
public enum ImageKind
{
    /// <summary>A bootable disk (raw or qcow2) that VMs get a copy-on-write overlay of.</summary>
    Disk,

    /// <summary>
    /// A kernel (and optional initrd and command line) booted directly by QEMU; the VM gets a blank
    /// disk of its disk_gb. Handy for appliances and for the tests' tiny Linux guest.
    /// </summary>
    Kernel,
}

/// <summary>An image in the node's store.</summary>
public sealed record ImageInfo(string ImageId, ImageKind Kind, string Format, string Sha256, long SizeBytes, long VirtualSizeBytes, string KernelAppend, DateTimeOffset CreatedAt)
{
    /// <summary>Pulled from the controller, which can send it again.</summary>
    public bool Pulled { get; init; }

    /// <summary>Exported from a snapshot for the VMs created from it; the export can be made again while the snapshot lives.</summary>
    public bool Exported { get; init; }

    /// <summary>
    /// The node may remove it: pulled or exported, so it can be had again. Such an image goes once
    /// unused for long enough, or when the controller deletes it; one put here by hand never does.
    /// </summary>
    public bool Disposable => Pulled || Exported;
}

/// <summary>images/&lt;id&gt;/manifest.json.</summary>
internal sealed class ImageManifest
{
    public int Version { get; set; } = 1;
    public string ImageId { get; set; } = "";
    public ImageKind Kind { get; set; }
    public string Format { get; set; } = "";
    public string Sha256 { get; set; } = "";
    public long SizeBytes { get; set; }
    public long VirtualSizeBytes { get; set; }
    public bool HasInitrd { get; set; }
    public string KernelAppend { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
    public bool Pulled { get; set; }
    public bool Exported { get; set; }
}
