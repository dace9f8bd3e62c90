using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu;

/// <summary>What the host offers, so that the choice of accelerator can be tested without the hardware.</summary>
internal sealed record AcceleratorProbe(bool IsWindows, bool KvmUsable)
{
    public static AcceleratorProbe Host { get; } = new(OperatingSystem.IsWindows(), !OperatingSystem.IsWindows() && KvmDeviceUsable());

    private static bool KvmDeviceUsable()
    {
        try
        {
            // Opening for read/write is what QEMU does; existence alone says nothing about permissions.
            using var kvm = new FileStream("/dev/kvm", FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite, 1);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}

internal enum AcceleratorChoice
{
    Auto,
    Kvm,
    Whpx,
    Tcg,
}

internal static class AcceleratorSelector
{
    public static bool TryParse(string? text, out AcceleratorChoice choice)
    {
        choice = AcceleratorChoice.Auto;
        switch (text?.Trim().ToLowerInvariant())
        {
            case "auto" or "" or null: choice = AcceleratorChoice.Auto; return true;
            case "kvm": choice = AcceleratorChoice.Kvm; return true;
            case "whpx": choice = AcceleratorChoice.Whpx; return true;
            case "tcg": choice = AcceleratorChoice.Tcg; return true;
            default: return false;
        }
    }

    /// <summary>The accelerator to use, or why the configured one cannot be.</summary>
    public static (Accelerator Accelerator, string? Error) Select(AcceleratorChoice choice, AcceleratorProbe probe) => choice switch
    {
        AcceleratorChoice.Auto when probe.IsWindows => (Accelerator.Whpx, null),
        AcceleratorChoice.Auto => (probe.KvmUsable ? Accelerator.Kvm : Accelerator.Tcg, null),
        AcceleratorChoice.Kvm when probe.IsWindows => (Accelerator.Kvm, "kvm is not available on Windows; use whpx, tcg or auto."),
        AcceleratorChoice.Kvm when !probe.KvmUsable => (Accelerator.Kvm, "kvm was asked for but /dev/kvm is missing or not usable by the agent; use tcg or auto."),
        AcceleratorChoice.Kvm => (Accelerator.Kvm, null),
        AcceleratorChoice.Whpx when !probe.IsWindows => (Accelerator.Whpx, "whpx is only available on Windows; use kvm, tcg or auto."),
        AcceleratorChoice.Whpx => (Accelerator.Whpx, null),
        _ => (Accelerator.Tcg, null),
    };
}
