namespace Cloud.Controller.Operations;

internal static class OperationStates
{
    public const string Pending = "PENDING";
    public const string Running = "RUNNING";
    public const string Succeeded = "SUCCEEDED";
    public const string Failed = "FAILED";

    /// <summary>Recovery: the work went on after the replica that started it stopped.</summary>
    public const string Resumed = "RESUMED";

    /// <summary>Recovery: the work was undone after the replica that started it stopped.</summary>
    public const string RolledBack = "ROLLED_BACK";

    public static bool IsFinal(string state) => state is Succeeded or Failed;
}

internal static class OperationKinds
{
    public const string VmCreate = "vm.create";
    public const string VmCreateFromSnapshot = "vm.create_from_snapshot";
    public const string VmCreateBatch = "vm.create_batch";
    public const string VmDelete = "vm.delete";
    public const string VmStart = "vm.start";
    public const string VmStop = "vm.stop";
    public const string VmReboot = "vm.reboot";
    public const string VmResize = "vm.resize";
    public const string VmMigrate = "vm.migrate";
    public const string NodeDrain = "node.drain";
    public const string SnapshotCreate = "snapshot.create";
    public const string SnapshotRestore = "snapshot.restore";
    public const string SnapshotDelete = "snapshot.delete";
    public const string TenantDelete = "tenant.delete";
}
