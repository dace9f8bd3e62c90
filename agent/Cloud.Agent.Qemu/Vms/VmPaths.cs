using System.Security.Cryptography;
using System.Text;

namespace Cloud.Agent.Qemu;

/// <summary>
/// The files of one VM under DataDirectory/vms/&lt;vm_id&gt;/. Only validated ids reach here, so
/// every path stays inside the data folder.
/// </summary>
internal sealed class VmPaths
{
    // sun_path is 108 bytes; a socket path longer than this cannot be bound.
    private const int MaxSocketPath = 107;

    public VmPaths(string dataDirectory, string vmId)
    {
        Directory = Path.Combine(dataDirectory, "vms", vmId);
        var socket = Path.Combine(Directory, "qmp.sock");
        // A deep data folder plus a long id can overflow sun_path; such sockets live in a short,
        // deterministic place instead, so that re-adoption finds them again.
        QmpSocket = Encoding.UTF8.GetByteCount(socket) <= MaxSocketPath
            ? socket
            : Path.Combine(dataDirectory, "run", Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(vmId)))[..16] + ".sock");
    }

    public string Directory { get; }

    /// <summary>
    /// Windows, with the pipe transport: the QMP pipe's name. Derived from the VM's folder, so two
    /// agents on one machine never share a name and a restarted agent finds it again.
    /// </summary>
    public string QmpPipeName => "cloud-qmp-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Directory)))[..24];

    /// <summary>The VM's spec (protobuf JSON of VmSpec, with its current shape).</summary>
    public string SpecFile => Path.Combine(Directory, "vm.json");

    /// <summary>The uid (and gid) the VM's QEMU runs as, when the agent is root; see <see cref="GuestIds"/>.</summary>
    public string GuestIdFile => GuestIdFileOf(Directory);

    public static string GuestIdFileOf(string vmDirectory) => Path.Combine(vmDirectory, "guest-id");

    public string DiskFile => Path.Combine(Directory, "disk.qcow2");

    public string QmpSocket { get; }

    /// <summary>Windows: the loopback TCP port of the QMP server.</summary>
    public string QmpPortFile => Path.Combine(Directory, "qmp.port");

    public string PidFile => Path.Combine(Directory, "qemu.pid");

    public string SerialLog => Path.Combine(Directory, "serial.log");

    /// <summary>QEMU's own stdout/stderr: the first place to look when it would not start.</summary>
    public string QemuLog => Path.Combine(Directory, "qemu.log");

    /// <summary>Facts about the running QEMU (hotplugged devices); removed when it stops.</summary>
    public string RuntimeFile => Path.Combine(Directory, "runtime.json");

    /// <summary>The destination side of an incoming migration.</summary>
    public string MigrationFile => Path.Combine(Directory, "migration.json");

    public string SnapshotsDirectory => Path.Combine(Directory, "snapshots");

    /// <summary>
    /// snapshots/&lt;id&gt;/: the snapshot's own immutable files (disk.qcow2, memory.state) and its
    /// record, written last; a folder without a record is an unfinished snapshot or transfer.
    /// </summary>
    public string SnapshotDirectory(string snapshotId) => Path.Combine(SnapshotsDirectory, snapshotId);

    public string SnapshotRecordFile(string snapshotId) => Path.Combine(SnapshotDirectory(snapshotId), "snapshot.json");

    /// <summary>Where a snapshot is put together (taken, or pulled from another node) before it is renamed into place.</summary>
    public string SnapshotStaging(string snapshotId) => Path.Combine(SnapshotsDirectory, ".partial-" + snapshotId);
}
