using System.Text.RegularExpressions;
using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Hypervisor;

/// <summary>
/// Checks what a request asks of a backend before anything touches disk: ids become folder
/// names, so they are restricted to a safe alphabet and can never name a path outside the node's
/// data folder.
/// </summary>
public static partial class VmSpecValidator
{
    public const int MaxVcpus = 256;
    public const long MaxMemoryMb = 4L * 1024 * 1024;
    public const long MaxDiskGb = 64 * 1024;

    [GeneratedRegex("^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$")]
    private static partial Regex SafeId();

    [GeneratedRegex("^dimm[0-9]{1,3}$")]
    private static partial Regex DimmId();

    public static bool IsSafeId(string? id) => id is not null && SafeId().IsMatch(id);

    // A node name is a DNS label (RFC 1123), lower case as the controller registers it.
    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    private static partial Regex NodeName();

    /// <summary>
    /// A migration's peer_node: empty, or a node name. It ends up in QEMU's tls-authz identity, so
    /// nothing but a DNS label may pass.
    /// </summary>
    public static void ValidatePeerNode(string? peerNode)
    {
        if (!string.IsNullOrEmpty(peerNode) && !NodeName().IsMatch(peerNode))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"peer_node '{peerNode}' must be a node name: a DNS label of 1 to 63 lower-case letters, digits and '-'.");
        }
    }

    public static void ValidateId(string? id, string what)
    {
        if (!IsSafeId(id))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"{what} '{id}' is invalid: use 1-64 letters, digits, '-' or '_', starting with a letter or digit.");
        }
    }

    public static void Validate(VmSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ValidateId(spec.VmId, "VM id");
        if (spec.Image.Length > 0)
        {
            ValidateId(spec.Image, "Image id");
        }
        if (spec.Name.Length > 63)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "VM name is longer than 63 characters.");
        }
        ValidateShape(spec.Shape);
    }

    public static void ValidateShape(VmShape? shape)
    {
        if (shape is null)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "VM shape is required.");
        }
        if (shape.Vcpus is < 1 or > MaxVcpus)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"vcpus must be between 1 and {MaxVcpus}, not {shape.Vcpus}.");
        }
        if (shape.MemoryMb is < 16 or > MaxMemoryMb)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"memory_mb must be between 16 and {MaxMemoryMb}, not {shape.MemoryMb}.");
        }
        if (shape.DiskGb is < 0 or > MaxDiskGb)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"disk_gb must be between 0 and {MaxDiskGb}, not {shape.DiskGb}.");
        }
        if (shape.MaxVcpus != 0 && shape.MaxVcpus < shape.Vcpus)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "max_vcpus must be 0 or at least vcpus.");
        }
        if (shape.MaxMemoryMb != 0 && shape.MaxMemoryMb < shape.MemoryMb)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "max_memory_mb must be 0 or at least memory_mb.");
        }
    }

    /// <summary>
    /// A migration destination's memory layout must describe memory the spec allows: boot RAM plus
    /// DIMMs within max_memory_mb, DIMM ids that QEMU accepts and that are not repeated.
    /// </summary>
    public static void ValidateMemoryLayout(VmSpec spec, MemoryLayout? layout)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (layout is null)
        {
            return;
        }
        var shape = spec.Shape;
        var max = Math.Max(shape.MaxMemoryMb, shape.MemoryMb);
        if (layout.BootMemoryMb < 16 || layout.BootMemoryMb > max)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"memory_layout.boot_memory_mb must be between 16 and {max} (max_memory_mb), not {layout.BootMemoryMb}.");
        }
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var total = layout.BootMemoryMb;
        foreach (var dimm in layout.Dimms)
        {
            if (!DimmId().IsMatch(dimm.Id) || !ids.Add(dimm.Id))
            {
                throw new HypervisorException(HypervisorError.InvalidArgument, $"memory_layout DIMM id '{dimm.Id}' is invalid or repeated: use dimm0, dimm1, ...");
            }
            if (dimm.SizeMb < 1)
            {
                throw new HypervisorException(HypervisorError.InvalidArgument, $"memory_layout DIMM {dimm.Id} must have a positive size_mb, not {dimm.SizeMb}.");
            }
            total += dimm.SizeMb;
        }
        if (total > max)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"memory_layout adds up to {total} MB, more than max_memory_mb {max}.");
        }
        if (layout.Dimms.Count > 0 && layout.BootMemoryMb >= max)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "memory_layout has DIMMs but the spec leaves no room for them (max_memory_mb equal to boot_memory_mb).");
        }
    }
}
