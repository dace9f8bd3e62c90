using System.Net;
using Microsoft.Extensions.Options;

namespace Cloud.Agent.Qemu;

/// <summary>Cross-field checks of <see cref="QemuOptions"/>, whose messages name the setting at fault.</summary>
internal sealed class QemuOptionsValidator : IValidateOptions<QemuOptions>
{
    public ValidateOptionsResult Validate(string? name, QemuOptions options)
    {
        var failures = Check(options, AcceleratorProbe.ForHost(options.QemuBinary));
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    internal static List<string> Check(QemuOptions options, AcceleratorProbe probe)
    {
        var failures = new List<string>();
        const string p = QemuOptions.SectionName + ":";
        if (string.IsNullOrWhiteSpace(options.DataDirectory) || !Path.IsPathFullyQualified(options.DataDirectory))
        {
            failures.Add($"{p}DataDirectory '{options.DataDirectory}' must be an absolute path.");
        }
        if (string.IsNullOrWhiteSpace(options.QemuBinary))
        {
            failures.Add($"{p}QemuBinary must name the QEMU system emulator.");
        }
        if (string.IsNullOrWhiteSpace(options.QemuImgBinary))
        {
            failures.Add($"{p}QemuImgBinary must name qemu-img.");
        }
        if (!AcceleratorSelector.TryParse(options.Accelerator, out var accel))
        {
            failures.Add($"{p}Accelerator '{options.Accelerator}' must be auto, kvm, whpx or tcg.");
        }
        else if (AcceleratorSelector.Select(accel, probe) is { Error: { } error })
        {
            failures.Add($"{p}Accelerator: {error}");
        }
        if (options.GuestIdRange.Length > 0)
        {
            if (!GuestIdRange.TryParse(options.GuestIdRange, out var ids))
            {
                failures.Add($"{p}GuestIdRange '{options.GuestIdRange}' must be 'first-last' with {GuestIdRange.Lowest} <= first < last < 2147483647, or empty.");
            }
            else if (OperatingSystem.IsLinux() && ids.Overlaps() is { Count: > 0 } taken)
            {
                failures.Add($"{p}GuestIdRange '{options.GuestIdRange}' holds ids of the host's own accounts: {string.Join(", ", taken.Take(5))}; choose a range no account or group uses.");
            }
            if (string.IsNullOrWhiteSpace(options.GuestIdRegistry) || !Path.IsPathFullyQualified(options.GuestIdRegistry))
            {
                failures.Add($"{p}GuestIdRegistry '{options.GuestIdRegistry}' must be an absolute path.");
            }
        }
        if (!PortRange.TryParse(options.MigrationPortRange, out _))
        {
            failures.Add($"{p}MigrationPortRange '{options.MigrationPortRange}' must be 'first-last' with 1024 <= first <= last <= 65535, or 'ephemeral'.");
        }
        if (options.TlsDirectory.Length > 0 && !Path.IsPathFullyQualified(options.TlsDirectory))
        {
            failures.Add($"{p}TlsDirectory '{options.TlsDirectory}' must be an absolute path, or empty for plaintext migration.");
        }
        if (!IPAddress.TryParse(options.ListenAddress, out var address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
        {
            failures.Add($"{p}ListenAddress '{options.ListenAddress}' must be a literal, specific IP address such as 127.0.0.2.");
        }
        if (options.TotalVcpus < 0 || options.TotalMemoryMb < 0 || options.TotalDiskGb < 0)
        {
            failures.Add($"{p}TotalVcpus, TotalMemoryMb and TotalDiskGb must be 0 (from the host) or positive.");
        }
        if (options.ReservedVcpus < 0 || options.ReservedMemoryMb < 0 || options.ReservedDiskGb < 0)
        {
            failures.Add($"{p}ReservedVcpus, ReservedMemoryMb and ReservedDiskGb must not be negative.");
        }
        if (!(options.CpuAllocationRatio > 0) || !(options.MemoryAllocationRatio > 0) || !(options.DiskAllocationRatio > 0))
        {
            failures.Add($"{p}CpuAllocationRatio, MemoryAllocationRatio and DiskAllocationRatio must be positive.");
        }
        if (options.MachineType is not ("q35" or "pc") && !options.MachineType.StartsWith("pc-q35-", StringComparison.Ordinal))
        {
            failures.Add($"{p}MachineType '{options.MachineType}' must be q35 (or a versioned pc-q35-*).");
        }
        if (options.WindowsQmpTransport is not ("tcp" or "pipe"))
        {
            failures.Add($"{p}WindowsQmpTransport '{options.WindowsQmpTransport}' must be tcp or pipe.");
        }
        if (options.MemorySlots is < 1 or > 256)
        {
            failures.Add($"{p}MemorySlots must be between 1 and 256.");
        }
        if (options.QmpTimeout <= TimeSpan.Zero || options.StartTimeout <= TimeSpan.Zero || options.ColdResizeStopTimeout <= TimeSpan.Zero
            || options.MigrationPollInterval <= TimeSpan.Zero || options.MigrationTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{p}QmpTimeout, StartTimeout, ColdResizeStopTimeout, MigrationPollInterval and MigrationTimeout must be positive.");
        }
        if (options.UnusedImageRetention < TimeSpan.Zero)
        {
            failures.Add($"{p}UnusedImageRetention must not be negative (zero keeps every image).");
        }
        if (options.ImageSweepInterval < TimeSpan.FromSeconds(1))
        {
            failures.Add($"{p}ImageSweepInterval must be at least 1 s.");
        }
        return failures;
    }
}
