using Microsoft.Extensions.Logging;

namespace Cloud.Agent.Qemu;

/// <summary>The backend's log messages; event ids 4000-4099.</summary>
internal static partial class Log
{
    [LoggerMessage(4000, LogLevel.Information, "VM {VmId}: {State} ({Reason})")]
    public static partial void StateChanged(ILogger logger, string vmId, string state, string reason);

    [LoggerMessage(4001, LogLevel.Information, "VM {VmId}: QEMU started, pid {Pid}")]
    public static partial void QemuStarted(ILogger logger, string vmId, int pid);

    [LoggerMessage(4002, LogLevel.Warning, "VM {VmId}: QEMU exited unexpectedly ({Reason})")]
    public static partial void QemuCrashed(ILogger logger, string vmId, string reason);

    [LoggerMessage(4003, LogLevel.Information, "VM {VmId}: re-adopted running QEMU pid {Pid}")]
    public static partial void Adopted(ILogger logger, string vmId, int pid);

    [LoggerMessage(4004, LogLevel.Warning, "Ignoring {Path}: {Reason}")]
    public static partial void IgnoredVmDirectory(ILogger logger, string path, string reason);

    [LoggerMessage(4005, LogLevel.Warning, "VM {VmId}: {Action} failed")]
    public static partial void ActionFailed(ILogger logger, Exception exception, string vmId, string action);

    [LoggerMessage(4006, LogLevel.Information, "VM {VmId}: migration {MigrationId} {Status}")]
    public static partial void Migration(ILogger logger, string vmId, string migrationId, string status);

    [LoggerMessage(4007, LogLevel.Debug, "VM {VmId}: QMP event {Event}")]
    public static partial void QmpEvent(ILogger logger, string vmId, string @event);

    [LoggerMessage(4008, LogLevel.Information, "QEMU backend: {Accelerator} accelerator, QEMU {Version}, data in {DataDirectory}")]
    public static partial void BackendReady(ILogger logger, string accelerator, string version, string dataDirectory);

    [LoggerMessage(4009, LogLevel.Information, "Image {ImageId} removed: no VM uses it, unused since {LastUsedAt:O}; {SizeBytes} bytes freed")]
    public static partial void UnusedImageRemoved(ILogger logger, string imageId, DateTimeOffset lastUsedAt, long sizeBytes);

    [LoggerMessage(4010, LogLevel.Warning, "Looking for unused images failed")]
    public static partial void ImageSweepFailed(ILogger logger, Exception exception);

    [LoggerMessage(4011, LogLevel.Information, "Image {ImageId} removed: the controller deleted it; {SizeBytes} bytes freed")]
    public static partial void DeletedImageRemoved(ILogger logger, string imageId, long sizeBytes);

    [LoggerMessage(4012, LogLevel.Warning, "VM {VmId}: the uid its folder records is missing or held by another VM; it runs as uid {GuestId} from its next start")]
    public static partial void GuestIdReassigned(ILogger logger, string vmId, int guestId);

    [LoggerMessage(4020, LogLevel.Warning, "Snapshot {SnapshotId} of VM {VmId} is not usable on this node: {Reason}")]
    public static partial void SnapshotUnusable(ILogger logger, string vmId, string snapshotId, string reason);

    [LoggerMessage(4021, LogLevel.Information, "Snapshot {SnapshotId} of VM {VmId} arrived: {Bytes} bytes, every file checked")]
    public static partial void SnapshotArrived(ILogger logger, string vmId, string snapshotId, long bytes);

    [LoggerMessage(4022, LogLevel.Information, "Snapshot {SnapshotId} of VM {VmId}, an internal snapshot of an earlier agent, is now a snapshot of its own: {What}")]
    public static partial void SnapshotKept(ILogger logger, string vmId, string snapshotId, string what);

    [LoggerMessage(4023, LogLevel.Warning, "VM {VmId}: a snapshot restore was cut short when the agent stopped; the VM keeps the disk it had, stopped")]
    public static partial void RestoreUnfinished(ILogger logger, string vmId);
}
