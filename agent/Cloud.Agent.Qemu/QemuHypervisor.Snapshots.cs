using System.Text.Json;
using System.Text.Json.Nodes;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;
using Cloud.Qmp;
using Google.Protobuf.WellKnownTypes;

namespace Cloud.Agent.Qemu;

/// <summary>
/// Snapshots are qcow2 internal snapshots of the VM's overlay, tagged with the snapshot id. A
/// running VM's snapshot also holds its RAM and device state (snapshot-save), so restoring it
/// brings the guest back exactly where it was; a stopped VM's snapshot is of its disk only.
/// </summary>
public sealed partial class QemuHypervisor
{
    private static readonly TimeSpan SnapshotJobTimeout = TimeSpan.FromMinutes(30);

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
            var record = new SnapshotRecord { SnapshotId = snapshotId, Name = name, CreatedAt = _time.GetUtcNow() };
            try
            {
                if (vm.Process is { } process && vm.State is VmState.Running or VmState.Paused)
                {
                    record.IncludesMemory = true;
                    await RunSnapshotJobAsync(vm, process, "snapshot-save", snapshotId, withVmState: true, cancellationToken).ConfigureAwait(false);
                }
                else if (vm.Process is null)
                {
                    await _qemuImg.SnapshotCreateAsync(vm.Paths.DiskFile, snapshotId, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    throw new HypervisorException(HypervisorError.FailedPrecondition, $"Cannot snapshot VM {vmId} while it is {vm.State}.");
                }
                var info = await _qemuImg.InfoAsync(vm.Paths.DiskFile, forceShare: vm.Process is not null, cancellationToken).ConfigureAwait(false);
                // The RAM image plus the disk's allocated size: an upper bound of what the snapshot pins.
                record.SizeBytes = (info.Snapshots.FirstOrDefault(s => s.Name == snapshotId)?.VmStateSize ?? 0) + info.ActualSize;
            }
            catch (HypervisorToolException ex)
            {
                throw new HypervisorException(HypervisorError.Internal, $"Snapshot {snapshotId} of VM {vmId} failed: {ex.Message}", ex);
            }
            WriteAtomically(vm.Paths.SnapshotFile(snapshotId), JsonSerializer.Serialize(record, QemuJsonContext.Default.SnapshotRecord));
            return ToSnapshot(vm, record);
        }
    }

    public async Task<IReadOnlyList<Snapshot>> ListSnapshotsAsync(string vmId, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var vm = Get(vmId);
        if (!Directory.Exists(vm.Paths.SnapshotsDirectory))
        {
            return [];
        }
        return [.. Directory.EnumerateFiles(vm.Paths.SnapshotsDirectory, "*.json")
            .Select(f => Path.GetFileNameWithoutExtension(f))
            .Where(VmSpecValidator.IsSafeId)
            .Select(id => ReadSnapshot(vm, id))
            .OfType<SnapshotRecord>()
            .OrderBy(r => r.CreatedAt)
            .Select(r => ToSnapshot(vm, r))];
    }

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
                    var wasRunning = vm.State is VmState.Running;
                    await RunSnapshotJobAsync(vm, process, "snapshot-load", snapshotId, withVmState: true, cancellationToken).ConfigureAwait(false);
                    // Loading leaves the guest paused; it continues as it was before the restore.
                    var status = await QueryStatusAsync(process.Qmp, cancellationToken).ConfigureAwait(false);
                    if (wasRunning && status is not VmState.Running)
                    {
                        await process.Qmp.ExecuteAsync("cont", null, cancellationToken).ConfigureAwait(false);
                    }
                    PublishEvent(vm, $"restored snapshot {snapshotId}");
                }
                else if (vm.Process is null)
                {
                    await _qemuImg.SnapshotApplyAsync(vm.Paths.DiskFile, snapshotId, cancellationToken).ConfigureAwait(false);
                    PublishEvent(vm, $"restored snapshot {snapshotId}");
                }
                else
                {
                    throw new HypervisorException(HypervisorError.FailedPrecondition, $"Cannot restore VM {vmId} while it is {vm.State}.");
                }
            }
            catch (HypervisorToolException ex)
            {
                throw new HypervisorException(HypervisorError.Internal, $"Restoring snapshot {snapshotId} of VM {vmId} failed: {ex.Message}", ex);
            }
            return Describe(vm, withUsage: false);
        }
    }

    public async Task DeleteSnapshotAsync(string vmId, string snapshotId, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateId(snapshotId, "Snapshot id");
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var (vm, scope) = await LockAsync(vmId, cancellationToken).ConfigureAwait(false);
        using (scope)
        {
            if (ReadSnapshot(vm, snapshotId) is null)
            {
                return;
            }
            try
            {
                if (vm.Process is { } process)
                {
                    if (vm.State is not (VmState.Running or VmState.Paused))
                    {
                        throw new HypervisorException(HypervisorError.FailedPrecondition, $"Cannot delete a snapshot of VM {vmId} while it is {vm.State}.");
                    }
                    await RunSnapshotJobAsync(vm, process, "snapshot-delete", snapshotId, withVmState: false, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    var info = await _qemuImg.InfoAsync(vm.Paths.DiskFile, forceShare: false, cancellationToken).ConfigureAwait(false);
                    if (info.Snapshots.Any(s => s.Name == snapshotId))
                    {
                        await _qemuImg.SnapshotDeleteAsync(vm.Paths.DiskFile, snapshotId, cancellationToken).ConfigureAwait(false);
                    }
                }
            }
            catch (HypervisorToolException ex)
            {
                throw new HypervisorException(HypervisorError.Internal, $"Deleting snapshot {snapshotId} of VM {vmId} failed: {ex.Message}", ex);
            }
            File.Delete(vm.Paths.SnapshotFile(snapshotId));
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
            // A running QEMU holds the disk's write lock; the snapshot's clusters are immutable, and
            // the gate keeps snapshot operations away while they are read.
            var running = vm.Process is not null;
            try
            {
                var image = await Images.AddGeneratedAsync(imageId,
                    (path, ct) => _qemuImg.ConvertSnapshotAsync(vm.Paths.DiskFile, snapshotId, path, running, ct),
                    cancellationToken).ConfigureAwait(false);
                return new ExportSnapshotResponse { ImageId = image.ImageId, Sha256 = image.Sha256, SizeBytes = image.SizeBytes };
            }
            catch (HypervisorToolException ex)
            {
                throw new HypervisorException(HypervisorError.Internal, $"Exporting snapshot {snapshotId} of VM {vmId} failed: {ex.Message}", ex);
            }
        }
    }

    /// <summary>Runs snapshot-save/-load/-delete as a QMP job and waits for it to conclude.</summary>
    private async Task RunSnapshotJobAsync(QemuVm vm, QemuProcess process, string command, string tag, bool withVmState, CancellationToken cancellationToken)
    {
        var jobId = command + "-" + tag;
        var args = new JsonObject
        {
            ["job-id"] = jobId,
            ["tag"] = tag,
            ["devices"] = new JsonArray(QemuCommandLine.DiskNode),
        };
        if (withVmState)
        {
            args["vmstate"] = QemuCommandLine.DiskNode;
        }
        vm.Busy = command;
        try
        {
            await RunJobAsync(vm, process.Qmp, command, args, jobId, SnapshotJobTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (QmpException ex)
        {
            throw new HypervisorException(HypervisorError.Internal, $"{command} of VM {vm.Id} failed: {ex.Message}", ex);
        }
        finally
        {
            vm.Busy = null;
        }
    }

    /// <summary>Starts a job-based command, waits for the job to conclude, dismisses it and reports its error.</summary>
    private async Task RunJobAsync(QemuVm vm, QmpClient qmp, string command, JsonObject args, string jobId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        await qmp.ExecuteAsync(command, args, cancellationToken).ConfigureAwait(false);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        while (true)
        {
            var jobs = await qmp.ExecuteAsync("query-jobs", null, deadline.Token).ConfigureAwait(false);
            JsonElement? job = null;
            foreach (var j in jobs.EnumerateArray())
            {
                if (j.TryGetProperty("id", out var id) && id.GetString() == jobId)
                {
                    job = j;
                }
            }
            if (job is not { } found)
            {
                throw new HypervisorException(HypervisorError.Internal, $"Job {jobId} disappeared before it concluded.");
            }
            var status = found.GetProperty("status").GetString();
            if (status == "concluded")
            {
                var error = found.TryGetProperty("error", out var e) ? e.GetString() : null;
                await qmp.ExecuteAsync("job-dismiss", new JsonObject { ["id"] = jobId }, deadline.Token).ConfigureAwait(false);
                if (error is not null)
                {
                    throw new HypervisorException(HypervisorError.FailedPrecondition, $"{command} failed: {error}");
                }
                return;
            }
            // JOB_STATUS_CHANGE events wake this up at once; the timeout is a fallback.
            await vm.JobSignal.WaitAsync(TimeSpan.FromMilliseconds(200), deadline.Token).ConfigureAwait(false);
        }
    }

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

    private static SnapshotRecord? ReadSnapshot(QemuVm vm, string snapshotId)
    {
        var path = vm.Paths.SnapshotFile(snapshotId);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            var record = JsonSerializer.Deserialize(File.ReadAllText(path), QemuJsonContext.Default.SnapshotRecord);
            return record?.SnapshotId == snapshotId ? record : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static Snapshot ToSnapshot(QemuVm vm, SnapshotRecord record) => new()
    {
        SnapshotId = record.SnapshotId,
        VmId = vm.Id,
        Name = record.Name,
        IncludesMemory = record.IncludesMemory,
        SizeBytes = record.SizeBytes,
        CreatedAt = Timestamp.FromDateTimeOffset(record.CreatedAt),
    };
}
