namespace Cloud.Agent.Qemu;

/// <summary>vms/&lt;id&gt;/snapshots/&lt;snapshot_id&gt;.json; the qcow2 snapshot's tag is the snapshot id.</summary>
internal sealed class SnapshotRecord
{
    public string SnapshotId { get; set; } = "";
    public string Name { get; set; } = "";
    public bool IncludesMemory { get; set; }
    public long SizeBytes { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
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
