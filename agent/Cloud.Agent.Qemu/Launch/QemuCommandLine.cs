using System.Globalization;
using System.Text.Json;
using Cloud.Contracts.Agent.V1;
using Cloud.Qmp;

namespace Cloud.Agent.Qemu;

/// <summary>Everything that decides a VM's QEMU command line; a pure value so the builder is unit-testable per platform.</summary>
internal sealed record QemuLaunchSpec
{
    public required string VmId { get; init; }
    public required Accelerator Accelerator { get; init; }
    public required bool Windows { get; init; }
    public string MachineType { get; init; } = "q35";
    public required int Vcpus { get; init; }
    public required int MaxVcpus { get; init; }
    public required long MemoryMb { get; init; }
    public required long MaxMemoryMb { get; init; }
    public int MemorySlots { get; init; } = 4;
    /// <summary>DIMMs plugged at start, in order: a migration destination recreating the source's hot-added memory.</summary>
    public IReadOnlyList<DimmRecord> Dimms { get; init; } = [];
    public string? DiskPath { get; init; }
    public string? KernelPath { get; init; }
    public string? InitrdPath { get; init; }
    public string? KernelAppend { get; init; }
    public required QmpEndpoint Qmp { get; init; }
    public required string SerialLogPath { get; init; }

    /// <summary>The guest goes on from a saved state (a snapshot's restore): its console log goes on too, rather than starting afresh.</summary>
    public bool AppendSerialLog { get; init; }
    public string? PidFilePath { get; init; }
    public string? RunAsUser { get; init; }
    public bool Incoming { get; init; }

    /// <summary>vCPUs stopped from the start (-S): the guest runs nothing until a QMP <c>cont</c>.</summary>
    public bool Paused { get; init; }
}

/// <summary>
/// Builds the QEMU argument vector. Devices are explicit (-nodefaults) so that nothing appears
/// that the migration destination would not also have, and nothing listens on the network.
/// </summary>
internal static class QemuCommandLine
{
    /// <summary>Block node name of the VM's disk; snapshots, mirrors and exports refer to it.</summary>
    public const string DiskNode = "disk0";

    /// <summary>The -sandbox policy. elevateprivileges=deny is left out: with -runas it kills QEMU (setuid is then a forbidden call).</summary>
    public const string SandboxPolicy = "on,obsolete=deny,spawn=deny,resourcecontrol=deny";

    public static IReadOnlyList<string> Build(QemuLaunchSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var args = new List<string>
        {
            "-name", $"guest={Escape(spec.VmId)},debug-threads=on",
            "-machine", $"{spec.MachineType},accel={AccelName(spec.Accelerator)}",
            "-cpu", spec.Accelerator switch
            {
                // The host model gives guests the real CPU's features under hardware virtualization;
                // TCG emulates a conservative model that any host can migrate to.
                Accelerator.Kvm => "host",
                _ => "qemu64",
            },
            "-smp", spec.MaxVcpus > spec.Vcpus
                ? Invariant($"cpus={spec.Vcpus},maxcpus={spec.MaxVcpus}")
                : Invariant($"cpus={spec.Vcpus}"),
            "-m", spec.MaxMemoryMb > spec.MemoryMb
                ? Invariant($"size={spec.MemoryMb}M,slots={spec.MemorySlots},maxmem={spec.MaxMemoryMb}M")
                : Invariant($"size={spec.MemoryMb}M"),
            "-nodefaults",
            "-no-user-config",
            "-display", "none",
            "-vga", "none",
            "-chardev", spec.Qmp.ToChardev("qmp"),
            "-mon", "chardev=qmp,mode=control",
            "-chardev", $"file,id=serial0,path={Escape(spec.SerialLogPath)}" + (spec.AppendSerialLog ? ",append=on" : ""),
            "-serial", "chardev:serial0",
            "-device", "virtio-balloon-pci,id=balloon0",
            "-msg", "timestamp=on",
        };
        if (!spec.Windows)
        {
            args.AddRange(["-sandbox", SandboxPolicy]);
            if (!string.IsNullOrEmpty(spec.RunAsUser))
            {
                args.AddRange(["-runas", spec.RunAsUser]);
            }
        }
        foreach (var dimm in spec.Dimms)
        {
            // The same ids and backend objects as a live hotplug creates (QemuHypervisor.Resize), so
            // the incoming stream's RAM blocks and device state find their counterparts.
            args.AddRange([
                "-object", Invariant($"memory-backend-ram,id=mem-{dimm.Id},size={dimm.SizeMb}M"),
                "-device", Invariant($"pc-dimm,id={dimm.Id},memdev=mem-{dimm.Id}"),
            ]);
        }
        if (spec.PidFilePath is not null)
        {
            args.AddRange(["-pidfile", spec.PidFilePath]);
        }
        if (spec.DiskPath is not null)
        {
            // JSON syntax: no escaping of commas in paths, and the backing chain opens from the overlay's header.
            var blockdev = JsonSerializer.Serialize(new BlockdevArgument(DiskNode, "qcow2", new BlockdevFile("file", spec.DiskPath)), QemuJsonContext.Default.BlockdevArgument);
            // QEMU gives the disk one queue per boot vCPU unless told otherwise; after a vCPU hotplug
            // a migration destination boots with more vCPUs than the source did, and a disk with
            // more queues cannot take the source's device state. Max vCPUs never changes live.
            args.AddRange(["-blockdev", blockdev, "-device", Invariant($"virtio-blk-pci,drive={DiskNode},id={DiskNode}-dev,bootindex=1,num-queues={Math.Max(spec.MaxVcpus, spec.Vcpus)}")]);
        }
        if (spec.KernelPath is not null)
        {
            args.AddRange(["-kernel", spec.KernelPath]);
            if (spec.InitrdPath is not null)
            {
                args.AddRange(["-initrd", spec.InitrdPath]);
            }
            if (!string.IsNullOrEmpty(spec.KernelAppend))
            {
                args.AddRange(["-append", spec.KernelAppend]);
            }
        }
        if (spec.Paused)
        {
            args.Add("-S");
        }
        if (spec.Incoming)
        {
            // The listening address is set later with migrate-incoming, after capabilities match the source.
            args.AddRange(["-incoming", "defer"]);
        }
        return args;
    }

    public static string AccelName(Accelerator accelerator) => accelerator switch
    {
        Accelerator.Kvm => "kvm",
        Accelerator.Whpx => "whpx",
        Accelerator.Tcg => "tcg",
        _ => throw new ArgumentOutOfRangeException(nameof(accelerator), accelerator, "No QEMU accelerator for this value."),
    };

    private static string Escape(string value) => QmpEndpoint.EscapeOption(value);

    private static string Invariant(FormattableString value) => value.ToString(CultureInfo.InvariantCulture);
}

internal sealed record BlockdevArgument(
    [property: System.Text.Json.Serialization.JsonPropertyName("node-name")] string NodeName,
    [property: System.Text.Json.Serialization.JsonPropertyName("driver")] string Driver,
    [property: System.Text.Json.Serialization.JsonPropertyName("file")] BlockdevFile File);

internal sealed record BlockdevFile(
    [property: System.Text.Json.Serialization.JsonPropertyName("driver")] string Driver,
    [property: System.Text.Json.Serialization.JsonPropertyName("filename")] string Filename);
