using System.Security.Cryptography;
using System.Text.Json;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;
using Google.Protobuf.WellKnownTypes;

namespace Cloud.Agent.Qemu;

/// <summary>
/// A snapshot is a folder of immutable files of its own, snapshots/&lt;id&gt;/ in the VM's folder:
/// disk.qcow2, the disk at that instant as an overlay of the VM's base image, and for a running
/// VM memory.state, QEMU's migration stream of the paused guest (RAM and devices). Being files
/// apart from the VM's live disk, they travel with the VM when it moves (the destination pulls
/// and checks them before the move) and restore on any node that holds the base image
/// (docs/design/011). Restoring memory starts a new QEMU that loads the saved state.
/// </summary>
public sealed partial class QemuHypervisor : ISnapshotFiles
{
    internal const string SnapshotDiskName = "disk.qcow2";
    internal const string SnapshotMemoryName = "memory.state";

    public async Task<Snapshot> CreateSnapshotAsync(string vmId, string snapshotId, string name, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateId(snapshotId, "Snapshot id");
        ValidateSnapshotName(name);
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var (vm, scope) = await LockAsync(vmId, cancellationToken).ConfigureAwait(false);
        using (scope)
        {
            RequireDisk(vm);
            if (ReadSnapshot(vm, snapshotId) is { } existing)
            {
                return existing.Name == name
                    ? ToSnapshot(vm, existing)
                    : throw new HypervisorException(HypervisorError.AlreadyExists, $"Snapshot {snapshotId} of VM {vmId} exists with another name.");
            }
            var staging = FreshDirectory(vm.Paths.SnapshotStaging(snapshotId));
            var record = new SnapshotRecord { SnapshotId = snapshotId, Name = name, CreatedAt = _time.GetUtcNow(), BaseImage = DiskBase(vm)?.ImageId };
            try
            {
                if (vm.Process is { } process && vm.State is VmState.Running or VmState.Paused)
                {
                    await SaveRunningSnapshotAsync(vm, process, record, staging, cancellationToken).ConfigureAwait(false);
                }
                else if (vm.Process is null)
                {
                    await _qemuImg.ConvertAsync(vm.Paths.DiskFile, "qcow2", Path.Combine(staging, SnapshotDiskName), null, DiskBase(vm) is { } image ? (Images.DiskPath(image), image.Format) : null,
                        forceShare: false, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    throw new HypervisorException(HypervisorError.FailedPrecondition, $"Cannot snapshot VM {vmId} while it is {vm.State}.");
                }
                await SealSnapshotAsync(vm, record, staging, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                DeleteDirectory(staging);
                if (ex is HypervisorToolException or IOException)
                {
                    throw new HypervisorException(HypervisorError.Internal, $"Snapshot {snapshotId} of VM {vmId} failed: {ex.Message}", ex);
                }
                throw;
            }
            return ToSnapshot(vm, record);
        }
    }

    /// <summary>
    /// The guest is paused for the instant: an internal snapshot of the disk (metadata only) and
    /// the memory stream are taken then; it runs on while the disk snapshot is copied out into a
    /// file of its own, and the internal one is dropped.
    /// </summary>
    private async Task SaveRunningSnapshotAsync(QemuVm vm, QemuProcess process, SnapshotRecord record, string staging, CancellationToken cancellationToken)
    {
        var qmp = process.Qmp;
        var tag = "taking-" + record.SnapshotId;
        record.IncludesMemory = true;
        record.Vcpus = process.Runtime.BootVcpus + process.Runtime.HotpluggedCpus.Count;
        record.BootMemoryMb = process.Runtime.BootMemoryMb;
        record.Dimms = [.. process.Runtime.Dimms.Select(d => new DimmRecord { Id = d.Id, SizeMb = d.SizeMb })];
        await DropInternalSnapshotAsync(qmp, tag, cancellationToken).ConfigureAwait(false);
        try
        {
            await SaveMemoryAsync(vm, process, Path.Combine(staging, SnapshotMemoryName),
                ct => qmp.ExecuteAsync("blockdev-snapshot-internal-sync", new() { ["device"] = QemuCommandLine.DiskNode, ["name"] = tag }, ct),
                cancellationToken).ConfigureAwait(false);
            var image = DiskBase(vm);
            await _qemuImg.ConvertAsync(vm.Paths.DiskFile, "qcow2", Path.Combine(staging, SnapshotDiskName), tag, image is null ? null : (Images.DiskPath(image), image.Format),
                forceShare: true, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await DropInternalSnapshotAsync(qmp, tag, CancellationToken.None).ConfigureAwait(false);
        }
    }

    private async Task DropInternalSnapshotAsync(Cloud.Qmp.QmpClient qmp, string tag, CancellationToken cancellationToken)
    {
        try
        {
            await qmp.ExecuteAsync("blockdev-snapshot-delete-internal-sync", new() { ["device"] = QemuCommandLine.DiskNode, ["name"] = tag }, cancellationToken).ConfigureAwait(false);
        }
        catch (Cloud.Qmp.QmpCommandException)
        {
            // None by that name: the usual case before a snapshot is taken.
        }
    }

    /// <summary>
    /// Records each file's size and SHA-256 (hashed here unless <paramref name="hashed"/> gives it,
    /// as a transfer that hashed the bytes on their way does), writes the record last and moves
    /// the folder into place.
    /// </summary>
    private async Task SealSnapshotAsync(QemuVm vm, SnapshotRecord record, string staging, CancellationToken cancellationToken,
        IReadOnlyDictionary<string, string>? hashed = null)
    {
        record.Files.Clear();
        foreach (var name in (string[])[SnapshotDiskName, SnapshotMemoryName])
        {
            var path = Path.Combine(staging, name);
            if (File.Exists(path))
            {
                var sha256 = hashed?.GetValueOrDefault(name) ?? await HashFileAsync(path, cancellationToken).ConfigureAwait(false);
                record.Files.Add(new SnapshotFileRecord { Name = name, SizeBytes = new FileInfo(path).Length, Sha256 = sha256 });
            }
        }
        record.SizeBytes = record.Files.Sum(f => f.SizeBytes);
        File.WriteAllText(Path.Combine(staging, "snapshot.json"), JsonSerializer.Serialize(record, QemuJsonContext.Default.SnapshotRecord));
        var final = vm.Paths.SnapshotDirectory(record.SnapshotId);
        DeleteDirectory(final);
        Directory.Move(staging, final);
        vm.SnapshotsChanged();
    }

    public async Task<IReadOnlyList<Snapshot>> ListSnapshotsAsync(string vmId, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var vm = Get(vmId);
        return [.. ReadSnapshots(vm).Select(r => ToSnapshot(vm, r))];
    }

    private IEnumerable<SnapshotRecord> ReadSnapshots(QemuVm vm)
        => Directory.Exists(vm.Paths.SnapshotsDirectory)
            ? Directory.EnumerateDirectories(vm.Paths.SnapshotsDirectory)
                .Select(d => Path.GetFileName(d))
                .Where(VmSpecValidator.IsSafeId)
                .Select(id => ReadSnapshot(vm, id))
                .OfType<SnapshotRecord>()
                .OrderBy(r => r.CreatedAt)
            : [];

    public async Task<Vm> RestoreSnapshotAsync(string vmId, string snapshotId, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateId(snapshotId, "Snapshot id");
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var (vm, scope) = await LockAsync(vmId, cancellationToken).ConfigureAwait(false);
        using (scope)
        {
            var record = ReadSnapshot(vm, snapshotId) ?? throw new HypervisorException(HypervisorError.NotFound, $"Snapshot {snapshotId} of VM {vmId} does not exist.");
            try
            {
                if (vm.Process is { } process && vm.State is VmState.Running or VmState.Paused)
                {
                    if (!record.IncludesMemory)
                    {
                        throw new HypervisorException(HypervisorError.FailedPrecondition,
                            $"Snapshot {snapshotId} holds a stopped VM's disk only; stop VM {vmId} to restore it.");
                    }
                    RequireRestorable(vm, record);
                    await RestoreRunningAsync(vm, record, cancellationToken).ConfigureAwait(false);
                }
                else if (vm.Process is null)
                {
                    await PutSnapshotDiskAsync(vm, record, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    throw new HypervisorException(HypervisorError.FailedPrecondition, $"Cannot restore VM {vmId} while it is {vm.State}.");
                }
                PublishEvent(vm, $"restored snapshot {snapshotId}");
            }
            catch (Exception ex) when (ex is HypervisorToolException or IOException)
            {
                throw new HypervisorException(HypervisorError.Internal, $"Restoring snapshot {snapshotId} of VM {vmId} failed: {ex.Message}", ex);
            }
            return Describe(vm, withUsage: false);
        }
    }

    /// <summary>
    /// A memory state loads only into the machine it was saved from; the VM may have been resized
    /// since, and is brought back to its current shape after the load, as a live resize would.
    /// What cannot be done live (fewer vCPUs than then) is refused before anything changes.
    /// </summary>
    private static void RequireRestorable(QemuVm vm, SnapshotRecord record)
    {
        if (vm.Spec.Shape.Vcpus < record.Vcpus)
        {
            throw new HypervisorException(HypervisorError.FailedPrecondition,
                $"VM {vm.Id} has {vm.Spec.Shape.Vcpus} vCPUs and snapshot {record.SnapshotId} was taken with {record.Vcpus}: vCPUs cannot be taken from a running guest. " +
                "Stop the VM to restore its disk only.");
        }
    }

    /// <summary>
    /// Restarts the guest from the snapshot: the running QEMU ends, the snapshot's disk replaces the
    /// VM's, and a new QEMU loads the memory state, then runs (or stays paused) as the VM was. If
    /// any step fails the VM is left stopped with the disk it had.
    /// </summary>
    private async Task RestoreRunningAsync(QemuVm vm, SnapshotRecord record, CancellationToken cancellationToken)
    {
        var wasRunning = vm.State is VmState.Running;
        var aside = DiskBeforeRestore(vm);
        vm.Busy = "restore";
        try
        {
            vm.Process!.ExpectedExit = $"restoring snapshot {record.SnapshotId}";
            await StopProcessAsync(vm, force: true, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
            File.Move(vm.Paths.DiskFile, aside, overwrite: true);
            try
            {
                await PutSnapshotDiskAsync(vm, record, cancellationToken).ConfigureAwait(false);
                var layout = new MemoryLayout { BootMemoryMb = record.BootMemoryMb };
                layout.Dimms.AddRange(record.Dimms.Select(d => new MemoryDimm { Id = d.Id, SizeMb = d.SizeMb }));
                await LaunchAsync(vm, incoming: false, cancellationToken, layout, paused: true, loadsState: true, bootVcpus: record.Vcpus).ConfigureAwait(false);
                var process = vm.Process!;
                await LoadMemoryAsync(vm, process, Path.Combine(vm.Paths.SnapshotDirectory(record.SnapshotId), SnapshotMemoryName), cancellationToken).ConfigureAwait(false);
                var current = vm.Spec.Shape;
                var saved = new VmShape
                {
                    Vcpus = record.Vcpus,
                    MemoryMb = record.BootMemoryMb + record.Dimms.Sum(d => d.SizeMb),
                    DiskGb = current.DiskGb,
                    MaxVcpus = current.MaxVcpus,
                    MaxMemoryMb = current.MaxMemoryMb,
                };
                // The balloon's target is the guest's, from the snapshot: set it afresh.
                process.Runtime.BalloonTargetMb = -1;
                await ResizeLiveAsync(vm, process, saved, current.Clone(), cancellationToken).ConfigureAwait(false);
                if (wasRunning)
                {
                    await vm.Process!.Qmp.ExecuteAsync("cont", null, cancellationToken).ConfigureAwait(false);
                }
                SetState(vm, wasRunning ? VmState.Running : VmState.Paused, $"restored snapshot {record.SnapshotId}");
                DeleteFiles(aside);
            }
            catch (Exception ex)
            {
                if (vm.Process is { } started)
                {
                    started.ExpectedExit = "snapshot restore failed";
                    await StopProcessAsync(vm, force: true, TimeSpan.Zero, CancellationToken.None).ConfigureAwait(false);
                }
                File.Move(aside, vm.Paths.DiskFile, overwrite: true);
                SetState(vm, VmState.Stopped, "snapshot restore failed", $"Restoring snapshot {record.SnapshotId} failed: {ex.Message}");
                throw;
            }
        }
        finally
        {
            vm.Busy = null;
        }
    }

    private static string DiskBeforeRestore(QemuVm vm) => vm.Paths.DiskFile + ".before-restore";

    /// <summary>
    /// An agent stopped in the middle of a restore left the VM's own disk aside: with no QEMU
    /// running, the restore never finished and the disk goes back, as a failed restore would
    /// leave it; with the restored guest running, the old disk is no longer wanted.
    /// </summary>
    private void SettleInterruptedRestore(QemuVm vm)
    {
        var aside = DiskBeforeRestore(vm);
        if (!File.Exists(aside))
        {
            return;
        }
        if (vm.Process is null)
        {
            File.Move(aside, vm.Paths.DiskFile, overwrite: true);
            Log.RestoreUnfinished(_logger, vm.Id);
        }
        else
        {
            File.Delete(aside);
        }
    }

    /// <summary>Replaces the VM's disk with a copy of the snapshot's (written beside it, then renamed over it).</summary>
    private async Task PutSnapshotDiskAsync(QemuVm vm, SnapshotRecord record, CancellationToken cancellationToken)
    {
        var copy = vm.Paths.DiskFile + ".restoring";
        File.Copy(Path.Combine(vm.Paths.SnapshotDirectory(record.SnapshotId), SnapshotDiskName), copy, overwrite: true);
        // A disk grown since the snapshot keeps its size; the guest finds the added space unused.
        var size = vm.Spec.Shape.DiskGb * 1024L * 1024 * 1024;
        if ((await _qemuImg.InfoAsync(copy, "qcow2", forceShare: false, cancellationToken).ConfigureAwait(false)).VirtualSize < size)
        {
            await _qemuImg.ResizeAsync(copy, "qcow2", size, cancellationToken).ConfigureAwait(false);
        }
        File.Move(copy, vm.Paths.DiskFile, overwrite: true);
        await OwnGuestFilesAsync(vm, cancellationToken).ConfigureAwait(false);
    }

    public async Task DeleteSnapshotAsync(string vmId, string snapshotId, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateId(snapshotId, "Snapshot id");
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var (vm, scope) = await LockAsync(vmId, cancellationToken).ConfigureAwait(false);
        using (scope)
        {
            // The files are the snapshot's alone: no QEMU holds them, whatever the VM's state.
            DeleteDirectory(vm.Paths.SnapshotDirectory(snapshotId));
            vm.SnapshotsChanged();
        }
    }

    public async Task<ExportSnapshotResponse> ExportSnapshotAsync(string vmId, string snapshotId, string imageId, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateId(snapshotId, "Snapshot id");
        VmSpecValidator.ValidateId(imageId, "Image id");
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var (vm, scope) = await LockAsync(vmId, cancellationToken).ConfigureAwait(false);
        using (scope)
        {
            _ = ReadSnapshot(vm, snapshotId) ?? throw new HypervisorException(HypervisorError.NotFound, $"Snapshot {snapshotId} of VM {vmId} does not exist.");
            // Asked again (a controller that resumes its operation): the export made before is the answer.
            if (Images.Find(imageId) is { Exported: true } made)
            {
                return new ExportSnapshotResponse { ImageId = made.ImageId, Sha256 = made.Sha256, SizeBytes = made.SizeBytes };
            }
            var disk = Path.Combine(vm.Paths.SnapshotDirectory(snapshotId), SnapshotDiskName);
            try
            {
                // Flattened: the image stands alone, whatever base the snapshot's disk overlays.
                var image = await Images.AddGeneratedAsync(imageId,
                    (path, ct) => _qemuImg.ConvertAsync(disk, "qcow2", path, null, null, forceShare: false, ct),
                    cancellationToken).ConfigureAwait(false);
                return new ExportSnapshotResponse { ImageId = image.ImageId, Sha256 = image.Sha256, SizeBytes = image.SizeBytes };
            }
            catch (HypervisorToolException ex)
            {
                throw new HypervisorException(HypervisorError.Internal, $"Exporting snapshot {snapshotId} of VM {vmId} failed: {ex.Message}", ex);
            }
        }
    }

    /// <summary>
    /// Agents before snapshot files kept snapshots as qcow2 internal snapshots, recorded in
    /// snapshots/&lt;id&gt;.json. At adoption each one's disk is copied out into a snapshot of its
    /// own, so that it survives the VM's next move; the memory of one taken running cannot be
    /// carried over, and it becomes a disk-only snapshot. The internal snapshot stays in the disk.
    /// </summary>
    private async Task KeepEarlierSnapshotsAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        if (!Directory.Exists(vm.Paths.SnapshotsDirectory) || !File.Exists(vm.Paths.DiskFile))
        {
            return;
        }
        foreach (var earlier in Directory.GetFiles(vm.Paths.SnapshotsDirectory, "*.json"))
        {
            var id = Path.GetFileNameWithoutExtension(earlier);
            try
            {
                var old = JsonSerializer.Deserialize(await File.ReadAllTextAsync(earlier, cancellationToken).ConfigureAwait(false), QemuJsonContext.Default.SnapshotRecord);
                if (!VmSpecValidator.IsSafeId(id) || old?.SnapshotId != id || ReadSnapshot(vm, id) is not null)
                {
                    continue;
                }
                var staging = FreshDirectory(vm.Paths.SnapshotStaging(id));
                var image = DiskBase(vm);
                await _qemuImg.ConvertAsync(vm.Paths.DiskFile, "qcow2", Path.Combine(staging, SnapshotDiskName), id, image is null ? null : (Images.DiskPath(image), image.Format),
                    forceShare: true, cancellationToken).ConfigureAwait(false);
                await SealSnapshotAsync(vm, new SnapshotRecord { SnapshotId = id, Name = old.Name, CreatedAt = old.CreatedAt, BaseImage = image?.ImageId }, staging, cancellationToken).ConfigureAwait(false);
                File.Delete(earlier);
                Log.SnapshotKept(_logger, vm.Id, id, old.IncludesMemory ? "its disk only: its memory stays behind" : "its disk");
            }
            catch (Exception ex) when (ex is HypervisorToolException or IOException or JsonException)
            {
                DeleteDirectory(vm.Paths.SnapshotStaging(id));
                Log.SnapshotUnusable(_logger, vm.Id, id, "an internal snapshot that could not be copied out: " + ex.Message);
            }
        }
    }

    private ImageInfo? DiskBase(QemuVm vm)
        => vm.Spec.Image.Length > 0 && Images.Find(vm.Spec.Image) is { Kind: ImageKind.Disk } image ? image : null;

    private static void RequireDisk(QemuVm vm)
    {
        if (!File.Exists(vm.Paths.DiskFile))
        {
            throw new HypervisorException(HypervisorError.FailedPrecondition, $"VM {vm.Id} has no disk to hold snapshots (disk_gb 0 and no image).");
        }
    }

    private static void ValidateSnapshotName(string name)
    {
        if (name is null || name.Length > 256 || name.Any(char.IsControl))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "Snapshot name must be at most 256 printable characters.");
        }
    }

    /// <summary>The snapshot's record, or null when it is missing, unreadable, or names files that are not there as recorded.</summary>
    private SnapshotRecord? ReadSnapshot(QemuVm vm, string snapshotId)
    {
        var path = vm.Paths.SnapshotRecordFile(snapshotId);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            var record = JsonSerializer.Deserialize(File.ReadAllText(path), QemuJsonContext.Default.SnapshotRecord);
            if (record?.SnapshotId != snapshotId || !record.Files.Any(f => f.Name == SnapshotDiskName)
                || record.Files.Any(f => new FileInfo(Path.Combine(vm.Paths.SnapshotDirectory(snapshotId), f.Name)) is not { Exists: true } file || file.Length != f.SizeBytes))
            {
                Log.SnapshotUnusable(_logger, vm.Id, snapshotId, "its files are not as its record says");
                return null;
            }
            return record;
        }
        catch (JsonException ex)
        {
            Log.SnapshotUnusable(_logger, vm.Id, snapshotId, ex.Message);
            return null;
        }
    }

    private static Snapshot ToSnapshot(QemuVm vm, SnapshotRecord record)
    {
        var snapshot = new Snapshot
        {
            SnapshotId = record.SnapshotId,
            VmId = vm.Id,
            Name = record.Name,
            IncludesMemory = record.IncludesMemory,
            SizeBytes = record.SizeBytes,
            CreatedAt = Timestamp.FromDateTimeOffset(record.CreatedAt),
            BaseImage = record.BaseImage ?? "",
            Vcpus = record.Vcpus,
        };
        snapshot.Files.AddRange(record.Files.Select(f => new SnapshotFile { Name = f.Name, SizeBytes = f.SizeBytes, Sha256 = f.Sha256 }));
        if (record.IncludesMemory)
        {
            snapshot.MemoryLayout = new MemoryLayout { BootMemoryMb = record.BootMemoryMb };
            snapshot.MemoryLayout.Dimms.AddRange(record.Dimms.Select(d => new MemoryDimm { Id = d.Id, SizeMb = d.SizeMb }));
        }
        return snapshot;
    }

    private static async Task<string> HashFileAsync(string path, CancellationToken cancellationToken)
    {
        await using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false));
    }

    private static string FreshDirectory(string path)
    {
        DeleteDirectory(path);
        Directory.CreateDirectory(path);
        return path;
    }

    private static void DeleteDirectory(string path)
    {
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
        }
    }
}
