using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu;

/// <summary>What the host offers, so that the choice of accelerator can be tested without the hardware.</summary>
internal sealed record AcceleratorProbe(bool IsWindows, bool KvmUsable)
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, AcceleratorProbe> Probed = new(StringComparer.Ordinal);

    /// <summary>This host, as <paramref name="qemuBinary"/> finds it; probed once per binary.</summary>
    public static AcceleratorProbe ForHost(string qemuBinary)
        => Probed.GetOrAdd(qemuBinary, binary => new(OperatingSystem.IsWindows(), !OperatingSystem.IsWindows() && KvmDeviceUsable() && KvmRunsAVcpu(binary)));

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

    /// <summary>
    /// A /dev/kvm that opens may still fail every guest: a nested hypervisor that refuses the
    /// host CPU model's MSRs makes QEMU abort at start. A machine of the kind VMs get under KVM
    /// (q35, -cpu host), started stopped and quit at once, says whether KVM really runs here.
    /// </summary>
    private static bool KvmRunsAVcpu(string qemuBinary)
    {
        var start = new System.Diagnostics.ProcessStartInfo(qemuBinary) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])["-machine", "q35,accel=kvm", "-cpu", "host", "-nodefaults", "-display", "none", "-S", "-qmp", "stdio"])
        {
            start.ArgumentList.Add(arg);
        }
        try
        {
            using var qemu = System.Diagnostics.Process.Start(start)!;
            qemu.StandardInput.Write("""{"execute":"qmp_capabilities"}""" + "\n" + """{"execute":"quit"}""" + "\n");
            qemu.StandardInput.Close();
            _ = qemu.StandardOutput.ReadToEndAsync();
            _ = qemu.StandardError.ReadToEndAsync();
            if (!qemu.WaitForExit(TimeSpan.FromSeconds(20)))
            {
                qemu.Kill();
                return false;
            }
            return qemu.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No QEMU to ask: it will not start guests with any accelerator, and says why then.
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
