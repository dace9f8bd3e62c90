using Cloud.Agent.Hypervisor;

namespace Cloud.Agent.Rpc;

/// <summary>
/// The destination's side of a move: every snapshot the source lists for the VM is pulled, file by
/// file, and taken in by the backend only once each file is checked against the source's list.
/// </summary>
internal sealed partial class SnapshotPuller(IHypervisor hypervisor, PeerAgents peers, ILogger<SnapshotPuller> logger)
{
    public async Task PullAllAsync(PeerSource source, string vmId, CancellationToken cancellationToken)
    {
        // A backend without snapshot files (the fake) carries its snapshots its own way; whatever
        // it holds is what PrepareMigration answers, and the controller moves the VM only if that
        // is every snapshot it has on record.
        if (hypervisor is not ISnapshotFiles files)
        {
            return;
        }
        var listed = await peers.ListSnapshotsAsync(source, vmId, cancellationToken);
        foreach (var snapshot in listed)
        {
            var started = Environment.TickCount64;
            await files.ImportSnapshotAsync(vmId, snapshot,
                (name, ct) => peers.ReadSnapshotFileAsync(source, vmId, snapshot.SnapshotId, name, ct), cancellationToken);
            Log.Pulled(logger, snapshot.SnapshotId, vmId, snapshot.SizeBytes, Environment.TickCount64 - started);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1110, Level = LogLevel.Information, Message = "Pulled snapshot {SnapshotId} of VM {VmId} ({Bytes} bytes) in {Milliseconds} ms")]
        public static partial void Pulled(ILogger logger, string snapshotId, string vmId, long bytes, long milliseconds);
    }
}
