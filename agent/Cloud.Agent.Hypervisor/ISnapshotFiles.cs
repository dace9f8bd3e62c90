using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Hypervisor;

/// <summary>
/// A backend whose snapshots are files that can leave the node: the source of a move serves them
/// (ReadSnapshotFile), and the destination takes them in, checked, before the VM arrives.
/// </summary>
public interface ISnapshotFiles
{
    /// <summary>Opens one file the snapshot lists (<see cref="Snapshot.Files"/>) for reading; NotFound when the snapshot or file is not here.</summary>
    Task<Stream> OpenSnapshotFileAsync(string vmId, string snapshotId, string name, CancellationToken cancellationToken);

    /// <summary>
    /// Takes in a snapshot another node holds for a VM arriving here (or already here):
    /// <paramref name="readFile"/> yields each listed file's bytes, which must match the size and
    /// SHA-256 that <paramref name="manifest"/> gives, or nothing is kept. Idempotent.
    /// </summary>
    Task<Snapshot> ImportSnapshotAsync(string vmId, Snapshot manifest, Func<string, CancellationToken, IAsyncEnumerable<ReadOnlyMemory<byte>>> readFile,
        CancellationToken cancellationToken);
}
