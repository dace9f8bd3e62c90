namespace Cloud.Agent.Qemu;

/// <summary>Settings of the QEMU backend, bound from the configuration section "Agent:Qemu".</summary>
public sealed class QemuOptions
{
    public const string SectionName = "Agent:Qemu";

    /// <summary>
    /// Root of everything the backend keeps on disk: images/ (the image store) and vms/ (one folder
    /// per VM with its spec, disk overlay, QMP socket, pid file and serial log). Must be absolute.
    /// Default /var/lib/cloud/agent (Linux) or %ProgramData%\Cloud\Agent (Windows).
    /// </summary>
    public string DataDirectory { get; set; } = OperatingSystem.IsWindows()
        ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.CommonApplicationData), "Cloud", "Agent")
        : "/var/lib/cloud/agent";

    /// <summary>The QEMU system emulator, a path or a name on PATH. Default qemu-system-x86_64.</summary>
    public string QemuBinary { get; set; } = "qemu-system-x86_64";

    /// <summary>The disk image tool, a path or a name on PATH. Default qemu-img.</summary>
    public string QemuImgBinary { get; set; } = "qemu-img";

    /// <summary>auto (KVM when a guest with the host CPU model starts under it, WHPX on Windows, else TCG), kvm, whpx or tcg. Default auto.</summary>
    public string Accelerator { get; set; } = "auto";

    /// <summary>
    /// When the agent runs as root on Linux, every guest's QEMU drops (-runas uid:gid) to a uid of
    /// its own from this range, "first-last", with a gid of the same number, and the VM's files
    /// are that uid's alone: an escaped guest cannot read another guest's disk. The first id is
    /// kept for inspecting incoming images. No account or group of the host may have an id in
    /// the range. Empty disables the drop (QEMU then runs as root: not recommended). When the
    /// agent is not root, QEMU runs as the agent's own user and this is not used. Default
    /// 200000-265535.
    /// </summary>
    public string GuestIdRange { get; set; } = "200000-265535";

    /// <summary>
    /// Where the ids of <see cref="GuestIdRange"/> in use are recorded: one folder for the whole
    /// host, shared by every agent on it, so that no two guests of any agent share a uid. Must be
    /// absolute. Default /var/lib/cloud/guest-ids.
    /// </summary>
    public string GuestIdRegistry { get; set; } = "/var/lib/cloud/guest-ids";

    /// <summary>
    /// Ports for incoming migration streams and NBD disk exports, "first-last", or "ephemeral" for
    /// any free port the OS picks (no firewall rule can then name them). Default 49152-49407.
    /// </summary>
    public string MigrationPortRange { get; set; } = "49152-49407";

    /// <summary>
    /// The agent's own address that migration sources connect to (migration stream and NBD). A
    /// literal IP address. Default 127.0.0.1.
    /// </summary>
    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>
    /// The node's TLS folder (the agent's Agent:Tls:Directory): with ca.pem, qemu.pem and qemu.key
    /// (CloudIdentity's file names), the QEMU certificate of this node. When set, live migration
    /// streams and NBD disk exports go over TLS with that certificate, and a destination admits
    /// only the certificate of the migration's source node (tls-authz). Empty: both are plaintext
    /// (for a single host or a trusted network only). Must be absolute. Default empty.
    /// </summary>
    public string TlsDirectory { get; set; } = "";

    /// <summary>vCPUs offered to the scheduler; 0 = the host's logical processors.</summary>
    public int TotalVcpus { get; set; }

    /// <summary>Memory offered to the scheduler in MiB; 0 = the host's physical memory.</summary>
    public long TotalMemoryMb { get; set; }

    /// <summary>Disk offered to the scheduler in GiB; 0 = the size of the file system holding DataDirectory.</summary>
    public long TotalDiskGb { get; set; }

    /// <summary>vCPUs kept for the host. Default 0.</summary>
    public int ReservedVcpus { get; set; }

    /// <summary>Memory kept for the host, in MiB. Default 0.</summary>
    public long ReservedMemoryMb { get; set; }

    /// <summary>Disk kept for the host, in GiB. Default 0.</summary>
    public long ReservedDiskGb { get; set; }

    /// <summary>vCPU overcommit the scheduler may apply. Default 4.</summary>
    public double CpuAllocationRatio { get; set; } = 4.0;

    /// <summary>Memory overcommit. Default 1 (none).</summary>
    public double MemoryAllocationRatio { get; set; } = 1.0;

    /// <summary>Disk overcommit (overlays are thin). Default 1.</summary>
    public double DiskAllocationRatio { get; set; } = 1.0;

    /// <summary>QEMU machine type. Default q35 (needed for PCIe and memory hotplug).</summary>
    public string MachineType { get; set; } = "q35";

    /// <summary>Hotplug memory slots given to a VM whose max_memory_mb exceeds memory_mb. Default 4.</summary>
    public int MemorySlots { get; set; } = 4;

    /// <summary>Node name reported in NodeInfo. Default: Agent:NodeName, else the machine name.</summary>
    public string NodeName { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>Availability zone reported in NodeInfo. Default empty.</summary>
    public string AvailabilityZone { get; set; } = "";

    /// <summary>
    /// How the agent reaches a VM's QEMU monitor on Windows: "tcp" (a port on 127.0.0.1 from the
    /// migration port range) or "pipe" (a named pipe, \\.\pipe\cloud-qmp-..., which needs no port).
    /// On Linux the monitor is always a unix socket in the VM's folder. Default tcp.
    /// </summary>
    public string WindowsQmpTransport { get; set; } = "tcp";

    /// <summary>Reply timeout of ordinary QMP commands. Default 30 s.</summary>
    public TimeSpan QmpTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long QEMU may take to start (parent of -daemonize returning). Default 60 s.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a cold resize waits for a graceful powerdown before forcing. Default 30 s.</summary>
    public TimeSpan ColdResizeStopTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often a running migration's progress is sampled. Default 100 ms.</summary>
    public TimeSpan MigrationPollInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>How long a migration may run before it is cancelled. Default 1 h.</summary>
    public TimeSpan MigrationTimeout { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// A pulled image that no VM on the node uses, and that nothing used for this long, is
    /// removed (the controller sends it again when a VM needs it). Images put on the node by
    /// hand are never removed. Zero keeps every image. Default 1 day.
    /// </summary>
    public TimeSpan UnusedImageRetention { get; set; } = TimeSpan.FromDays(1);

    /// <summary>How often unused pulled images are looked for. Default 1 h.</summary>
    public TimeSpan ImageSweepInterval { get; set; } = TimeSpan.FromHours(1);
}
