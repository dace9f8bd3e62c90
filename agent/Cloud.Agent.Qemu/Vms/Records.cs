namespace Cloud.Agent.Qemu;

/// <summary>vms/&lt;id&gt;/snapshots/&lt;snapshot_id&gt;.json; the qcow2 snapshot's tag is the snapshot id.</summary>
internal sealed class SnapshotRecord
{
    public string SnapshotId { get; set; } = "";
    public string Name { get; set; } = "";
    public bool IncludesMemory { get; set; }
    public long SizeBytes { get; set; }
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>The image the snapshot's disk is an overlay of; null for a blank disk (standalone file).</summary>
    public string? BaseImage { get; set; }

    /// <summary>A memory snapshot's vCPUs and memory plug-up: the machine its memory state fits.</summary>
    public int Vcpus { get; set; }

    public long BootMemoryMb { get; set; }

    public List<DimmRecord> Dimms { get; set; } = [];

    /// <summary>disk.qcow2 and, for a memory snapshot, memory.state: each with its size and SHA-256 as stored here.</summary>
    public List<SnapshotFileRecord> Files { get; set; } = [];
}

internal sealed class SnapshotFileRecord
{
    public string Name { get; set; } = "";
    public long SizeBytes { get; set; }
    public string Sha256 { get; set; } = "";
}

/// <summary>vms/&lt;id&gt;/runtime.json: what a running QEMU has beyond its command line.</summary>
internal sealed class RuntimeRecord
{
    public int BootVcpus { get; set; }
    public long BootMemoryMb { get; set; }
    public List<string> HotpluggedCpus { get; set; } = [];
    public List<DimmRecord> Dimms { get; set; } = [];
    public long BalloonTargetMb { get; set; }
    public bool Incoming { get; set; }
}

internal sealed class DimmRecord
{
    public string Id { get; set; } = "";
    public long SizeMb { get; set; }
}

/// <summary>vms/&lt;id&gt;/migration.json on a migration destination.</summary>
internal sealed class MigrationRecord
{
    public string MigrationId { get; set; } = "";
    public string MigrationUri { get; set; } = "";
    public string DiskUri { get; set; } = "";
    public int MigrationPort { get; set; }
    public int NbdPort { get; set; }
}
