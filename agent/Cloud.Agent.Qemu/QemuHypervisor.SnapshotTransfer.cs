using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu;

/// <summary>
/// Snapshots leaving and reaching the node with their VM. The source serves the files as they
/// are; the destination writes each into a staging folder while hashing it, keeps the snapshot
/// only if every file has the size and SHA-256 the source listed, then points the disk at this
/// node's copy of the base image. Nothing at the source changes: it keeps its folder until the
/// move is over.
/// </summary>
public sealed partial class QemuHypervisor
{
    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Hex();

    public async Task<Stream> OpenSnapshotFileAsync(string vmId, string snapshotId, string name, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateId(snapshotId, "Snapshot id");
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var vm = Get(vmId);
        var record = ReadSnapshot(vm, snapshotId) ?? throw new HypervisorException(HypervisorError.NotFound, $"Snapshot {snapshotId} of VM {vmId} does not exist.");
        if (!record.Files.Any(f => f.Name == name))
        {
            throw new HypervisorException(HypervisorError.NotFound, $"Snapshot {snapshotId} has no file '{name}'.");
        }
        // The files are immutable; a delete meanwhile unlinks them, and this reader keeps its copy.
        return new FileStream(Path.Combine(vm.Paths.SnapshotDirectory(snapshotId), name), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, useAsync: true);
    }

    public async Task<Snapshot> ImportSnapshotAsync(string vmId, Snapshot manifest, Func<string, CancellationToken, IAsyncEnumerable<ReadOnlyMemory<byte>>> readFile,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(readFile);
        ValidateManifest(manifest);
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var (vm, scope) = await LockAsync(vmId, cancellationToken).ConfigureAwait(false);
        using (scope)
        {
            if (ReadSnapshot(vm, manifest.SnapshotId) is { } present)
            {
                return ToSnapshot(vm, present);
            }
            var baseImage = manifest.BaseImage.Length == 0 ? null
                : Images.Find(manifest.BaseImage) is { Kind: ImageKind.Disk } image ? image
                : throw new HypervisorException(HypervisorError.FailedPrecondition, $"Snapshot {manifest.SnapshotId} overlays image {manifest.BaseImage}, which this node's store does not hold.");
            var staging = FreshDirectory(vm.Paths.SnapshotStaging(manifest.SnapshotId));
            try
            {
                var hashed = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var file in manifest.Files)
                {
                    await ReceiveFileAsync(Path.Combine(staging, file.Name), file, readFile(file.Name, cancellationToken), cancellationToken).ConfigureAwait(false);
                    hashed[file.Name] = file.Sha256;
                }
                if (baseImage is not null)
                {
                    await _qemuImg.RebaseUnsafeAsync(Path.Combine(staging, SnapshotDiskName), Images.DiskPath(baseImage), baseImage.Format, cancellationToken).ConfigureAwait(false);
                    hashed.Remove(SnapshotDiskName);
                }
                var record = new SnapshotRecord
                {
                    SnapshotId = manifest.SnapshotId,
                    Name = manifest.Name,
                    IncludesMemory = manifest.IncludesMemory,
                    CreatedAt = manifest.CreatedAt?.ToDateTimeOffset() ?? _time.GetUtcNow(),
                    BaseImage = baseImage?.ImageId,
                    Vcpus = manifest.Vcpus,
                    BootMemoryMb = manifest.MemoryLayout?.BootMemoryMb ?? 0,
                    Dimms = [.. (manifest.MemoryLayout?.Dimms ?? []).Select(d => new DimmRecord { Id = d.Id, SizeMb = d.SizeMb })],
                };
                await SealSnapshotAsync(vm, record, staging, cancellationToken, hashed).ConfigureAwait(false);
                Log.SnapshotArrived(_logger, vm.Id, record.SnapshotId, record.SizeBytes);
                return ToSnapshot(vm, record);
            }
            catch (Exception ex)
            {
                DeleteDirectory(staging);
                if (ex is HypervisorToolException or IOException)
                {
                    throw new HypervisorException(HypervisorError.Internal, $"Snapshot {manifest.SnapshotId} of VM {vmId} could not be taken in: {ex.Message}", ex);
                }
                throw;
            }
        }
    }

    /// <summary>Writes one file while hashing it; a byte more than listed, or a size or hash that differs, refuses it.</summary>
    private static async Task ReceiveFileAsync(string path, SnapshotFile expected, IAsyncEnumerable<ReadOnlyMemory<byte>> chunks, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long received = 0;
        await using (var output = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
        {
            await foreach (var chunk in chunks.WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                received += chunk.Length;
                if (received > expected.SizeBytes)
                {
                    throw new HypervisorException(HypervisorError.Internal, $"{expected.Name} came with more than the {expected.SizeBytes} bytes listed.");
                }
                hash.AppendData(chunk.Span);
                await output.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
            }
            await output.FlushAsync(cancellationToken).ConfigureAwait(false);
            output.Flush(flushToDisk: true);
        }
        var sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (received != expected.SizeBytes || sha256 != expected.Sha256)
        {
            throw new HypervisorException(HypervisorError.Internal,
                $"{expected.Name} arrived damaged: {received} bytes with SHA-256 {sha256}, where the source listed {expected.SizeBytes} bytes with {expected.Sha256}.");
        }
    }

    /// <summary>A manifest comes from another node: only the files a snapshot is made of, each once, with a well-formed hash.</summary>
    private static void ValidateManifest(Snapshot manifest)
    {
        VmSpecValidator.ValidateId(manifest.SnapshotId, "Snapshot id");
        ValidateSnapshotName(manifest.Name);
        if (manifest.BaseImage.Length > 0)
        {
            VmSpecValidator.ValidateId(manifest.BaseImage, "Base image id");
        }
        var names = manifest.Files.Select(f => f.Name).ToList();
        string[] expected = manifest.IncludesMemory ? [SnapshotDiskName, SnapshotMemoryName] : [SnapshotDiskName];
        if (names.Count != expected.Length || !expected.All(names.Contains))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument,
                $"Snapshot {manifest.SnapshotId} must list exactly {string.Join(" and ", expected)}, not [{string.Join(", ", names)}].");
        }
        if (manifest.Files.FirstOrDefault(f => f.SizeBytes < 0 || !Sha256Hex().IsMatch(f.Sha256)) is { } bad)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"Snapshot {manifest.SnapshotId} lists {bad.Name} with a negative size or a malformed SHA-256.");
        }
        if (manifest.IncludesMemory && (manifest.Vcpus < 1 || manifest.MemoryLayout is not { BootMemoryMb: > 0 }))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"Memory snapshot {manifest.SnapshotId} must give its vCPUs and memory layout.");
        }
    }
}
