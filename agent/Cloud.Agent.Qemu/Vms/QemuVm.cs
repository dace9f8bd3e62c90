using System.Diagnostics;
using Cloud.Contracts.Agent.V1;
using Cloud.Qmp;

namespace Cloud.Agent.Qemu;

/// <summary>
/// One VM known to the backend. Operations on it are serialized by <see cref="Gate"/>; the state
/// fields are also written by the QMP event pump, under <see cref="StateLock"/>, which never waits
/// for the gate (an operation holding the gate may be waiting for an event).
/// </summary>
internal sealed class QemuVm(string id, VmPaths paths, VmSpec spec, DateTimeOffset now)
{
    public string Id { get; } = id;

    public VmPaths Paths { get; } = paths;

    public VmSpec Spec { get; set; } = spec;

    public SemaphoreSlim Gate { get; } = new(1, 1);

    public Lock StateLock { get; } = new();

    public VmState State { get; set; } = VmState.Creating;

    public DateTimeOffset StateSince { get; set; } = now;

    public string Error { get; set; } = "";

    public QemuProcess? Process { get; set; }

    /// <summary>Set once the VM is deleted or migrated away; a caller that waited for the gate must then give up.</summary>
    public bool Removed { get; set; }

    /// <summary>
    /// The operation in progress that pauses and resumes the guest by itself (snapshot, migration);
    /// while set, STOP and RESUME events do not change the reported state.
    /// </summary>
    public string? Busy { get; set; }

    /// <summary>Destination side of a live migration, while the guest waits for its stream.</summary>
    public MigrationRecord? Incoming { get; set; }

    /// <summary>The uid and gid the VM's QEMU runs as; null when QEMU keeps the agent's user.</summary>
    public int? GuestId { get; set; }

    /// <summary>Source side of a live migration in flight.</summary>
    public string? OutgoingMigrationId { get; set; }

    /// <summary>Cancels the outgoing migration (AbortMigration on the source).</summary>
    public CancellationTokenSource? OutgoingAbort { get; set; }

    /// <summary>Completes when the outgoing migration has finished, one way or the other.</summary>
    public Task? OutgoingDone { get; set; }

    /// <summary>Released on QMP events that move a migration or a block job along, so waits end at once.</summary>
    public SemaphoreSlim JobSignal { get; } = new(0, int.MaxValue);

    public CpuSample? LastCpu { get; set; }

    public VmUsage? LastUsage { get; set; }

    private int _snapshotChanges;
    private SnapshotIdsRead? _snapshotIds;

    /// <summary>Call after the VM's snapshots changed on disk.</summary>
    public void SnapshotsChanged() => Interlocked.Increment(ref _snapshotChanges);

    /// <summary>
    /// The snapshots this node holds for the VM: <paramref name="read"/> from its folder once, then
    /// again only after <see cref="SnapshotsChanged"/>. Every ListVms (each heartbeat) reports
    /// them, and only this agent changes them. A read that a change overtakes is not kept.
    /// </summary>
    public IReadOnlyList<string> SnapshotIds(Func<IReadOnlyList<string>> read)
    {
        var changes = Volatile.Read(ref _snapshotChanges);
        if (_snapshotIds is { } cached && cached.Changes == changes)
        {
            return cached.Ids;
        }
        var ids = read();
        _snapshotIds = new SnapshotIdsRead(changes, ids);
        return ids;
    }

    private sealed record SnapshotIdsRead(int Changes, IReadOnlyList<string> Ids);
}

internal sealed record CpuSample(long Ticks, double Seconds);

/// <summary>One running QEMU process and its monitor connection.</summary>
internal sealed class QemuProcess(int pid, QmpClient qmp, Process? child, RuntimeRecord runtime)
{
    public int Pid { get; } = pid;

    public QmpClient Qmp { get; } = qmp;

    /// <summary>The process when this agent started it; null for a re-adopted QEMU.</summary>
    public Process? Child { get; } = child;

    public RuntimeRecord Runtime { get; } = runtime;

    public TaskCompletionSource Exited { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Why the agent made QEMU exit, when it did (stop, delete, migration done).</summary>
    public string? ExpectedExit { get; set; }

    /// <summary>The reason of QEMU's SHUTDOWN event (guest-shutdown, host-qmp-quit, host-signal ...).</summary>
    public string? ShutdownReason { get; set; }

    /// <summary>The agent let go of this QEMU (it is shutting down); the guest keeps running.</summary>
    public bool Detached { get; set; }

    public Task? Pump { get; set; }
}
