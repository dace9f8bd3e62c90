using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Hypervisor;

/// <summary>
/// A node's hypervisor, as the agent's gRPC service drives it. Every method is safe to call
/// again with the same arguments after a timeout (the controller retries idempotent calls):
/// creating a VM that exists with the same spec returns it, deleting a missing VM succeeds.
/// Failures are <see cref="HypervisorException"/>s whose code maps onto a gRPC status.
/// </summary>
public interface IHypervisor
{
    /// <summary>Backend name reported in the inventory: "qemu" or "fake".</summary>
    string Name { get; }

    Task<NodeInfo> GetNodeInfoAsync(CancellationToken cancellationToken);

    Task<IReadOnlyList<Vm>> ListVmsAsync(CancellationToken cancellationToken);

    Task<Vm> CreateVmAsync(VmSpec spec, CancellationToken cancellationToken);

    /// <summary>
    /// Runs a stopped or paused VM. <paramref name="paused"/> instead starts a stopped VM with its
    /// vCPUs stopped, so that it can be migrated without the guest running an instruction; a VM
    /// already running is then refused.
    /// </summary>
    Task<Vm> StartVmAsync(string vmId, bool paused, CancellationToken cancellationToken);

    /// <summary>Graceful (ACPI powerdown, forced once <paramref name="timeout"/> passes) or forced stop.</summary>
    Task<Vm> StopVmAsync(string vmId, bool force, TimeSpan timeout, CancellationToken cancellationToken);

    Task<Vm> RebootVmAsync(string vmId, CancellationToken cancellationToken);

    /// <summary>Stops the guest if needed and removes everything the VM left on the node.</summary>
    Task DeleteVmAsync(string vmId, CancellationToken cancellationToken);

    /// <summary>Live where possible; otherwise cold when <paramref name="allowCold"/>, else FailedPrecondition.</summary>
    Task<Vm> ResizeVmAsync(string vmId, VmShape shape, bool allowCold, CancellationToken cancellationToken);

    Task<Snapshot> CreateSnapshotAsync(string vmId, string snapshotId, string name, CancellationToken cancellationToken);

    Task<IReadOnlyList<Snapshot>> ListSnapshotsAsync(string vmId, CancellationToken cancellationToken);

    Task<Vm> RestoreSnapshotAsync(string vmId, string snapshotId, CancellationToken cancellationToken);

    Task DeleteSnapshotAsync(string vmId, string snapshotId, CancellationToken cancellationToken);

    /// <summary>Writes the snapshot's disk into the node's image store as a new image.</summary>
    Task<ExportSnapshotResponse> ExportSnapshotAsync(string vmId, string snapshotId, string imageId, CancellationToken cancellationToken);

    /// <summary>
    /// Destination side: starts a guest waiting for an incoming migration, with the source's
    /// <paramref name="memoryLayout"/> (boot RAM and hot-added DIMMs) when it has one.
    /// <paramref name="peerNode"/> is the source node's name (empty when not known): a backend
    /// that encrypts the stream admits only that node's certificate.
    /// </summary>
    Task<PrepareMigrationResponse> PrepareMigrationAsync(VmSpec spec, string migrationId, MemoryLayout? memoryLayout, string peerNode, CancellationToken cancellationToken);

    /// <summary>Source side: migrates and yields progress until completed, failed or cancelled.</summary>
    IAsyncEnumerable<MigrationProgress> MigrateAsync(MigrateRequest request, CancellationToken cancellationToken);

    /// <summary>Cancels a migration on either side; the source guest keeps running.</summary>
    Task AbortMigrationAsync(string vmId, string migrationId, CancellationToken cancellationToken);

    /// <summary>State changes of every VM on the node, as they happen.</summary>
    IAsyncEnumerable<VmEvent> WatchEventsAsync(CancellationToken cancellationToken);

    /// <summary>
    /// The last <paramref name="maxBytes"/> bytes of what the guest printed on its serial console
    /// (at most <see cref="Cloud.Contracts.ConsoleOutputLimits.MaxBytes"/>); empty for a VM that
    /// never ran. NotFound for a VM the node does not hold. Reads only: safe at any time.
    /// </summary>
    Task<ConsoleOutput> GetConsoleOutputAsync(string vmId, int maxBytes, CancellationToken cancellationToken);
}

/// <summary>What went wrong in a backend, in terms the gRPC layer maps to a status code.</summary>
public enum HypervisorError
{
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    ResourceExhausted,
    Unavailable,
    Internal,
}

/// <summary>A backend failure with a message fit to show a user.</summary>
public sealed class HypervisorException(HypervisorError error, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public HypervisorError Error { get; } = error;
}
