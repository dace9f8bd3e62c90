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

    public static bool IsSafeId(string? id) => id is not null && SafeId().IsMatch(id);

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
}
