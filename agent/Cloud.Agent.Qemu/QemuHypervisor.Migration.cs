using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;
using Cloud.Qmp;
using Phase = Cloud.Contracts.Agent.V1.MigrationProgress.Types.Phase;

namespace Cloud.Agent.Qemu;

/// <summary>
/// Live migration with local disks, agent to agent. The destination starts QEMU with
/// -incoming defer, exports its fresh overlay over NBD and listens for the stream. The source
/// mirrors its overlay into that export (only the overlay: both nodes hold the same base image),
/// migrates RAM, pauses before switchover, lets the mirror finish so the destination disk is
/// exactly the source's, and only then lets the destination run. A paused guest (a stopped VM
/// started paused for its move) goes the same way and arrives paused: QEMU carries the run state.
/// </summary>
public sealed partial class QemuHypervisor
{
    private const string MigratedAway = "migrated";
    private const string MirrorJob = "migration-mirror";
    private const string MirrorTarget = "migration-target";
    private const string NbdExport = "migration-export";

    public async Task<PrepareMigrationResponse> PrepareMigrationAsync(VmSpec spec, string migrationId, MemoryLayout? memoryLayout, string peerNode, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        VmSpecValidator.Validate(spec);
        VmSpecValidator.ValidateId(migrationId, "Migration id");
        RequirePeerNode(peerNode ?? "", "peer_node");
        VmSpecValidator.ValidateMemoryLayout(spec, memoryLayout);
        if (memoryLayout is not null && memoryLayout.Dimms.Count > _options.MemorySlots)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument,
                $"memory_layout has {memoryLayout.Dimms.Count} DIMMs; this node gives a VM {_options.MemorySlots} memory slots (Agent:Qemu:MemorySlots).");
        }
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        QemuVm vm;
        await _registryGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_vms.TryGetValue(spec.VmId, out var existing) && !existing.Removed)
            {
                if (existing.Incoming is { } record && record.MigrationId == migrationId)
                {
                    return new PrepareMigrationResponse { MigrationUri = record.MigrationUri, DiskUri = record.DiskUri };
                }
                throw new HypervisorException(HypervisorError.AlreadyExists, $"VM {spec.VmId} already exists on this node.");
            }
            var stored = spec.Clone();
            stored.Start = false;
            stored.Shape = NormalizeShape(spec.Shape);
            vm = new QemuVm(spec.VmId, new VmPaths(_options.DataDirectory, spec.VmId), stored, _time.GetUtcNow());
            await vm.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await CreateVmFilesAsync(vm, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                vm.Gate.Release();
                throw;
            }
            _vms[vm.Id] = vm;
        }
        finally
        {
            _registryGate.Release();
        }
        try
        {
            var record = new MigrationRecord { MigrationId = migrationId };
            vm.Incoming = record;
            await LaunchAsync(vm, incoming: true, cancellationToken, memoryLayout).ConfigureAwait(false);
            var qmp = vm.Process!.Qmp;
            var host = _options.ListenAddress;
            var hostInUri = IPAddress.Parse(host).AddressFamily == AddressFamily.InterNetworkV6 ? "[" + host + "]" : host;
            var tls = await AddMigrationTlsAsync(vm, qmp, migrationId, peerNode ?? "", server: true, cancellationToken).ConfigureAwait(false);
            await qmp.ExecuteAsync("migrate-set-capabilities", Capabilities(("events", true)), cancellationToken).ConfigureAwait(false);
            if (tls)
            {
                await qmp.ExecuteAsync("migrate-set-parameters", new JsonObject { ["tls-creds"] = TlsCredsObject, ["tls-authz"] = TlsAuthzObject }, cancellationToken).ConfigureAwait(false);
            }
            if (File.Exists(vm.Paths.DiskFile))
            {
                record.NbdPort = _ports.Reserve();
                var nbdServer = new JsonObject
                {
                    ["addr"] = new JsonObject
                    {
                        ["type"] = "inet",
                        ["data"] = new JsonObject { ["host"] = host, ["port"] = record.NbdPort.ToString(CultureInfo.InvariantCulture) },
                    },
                };
                if (tls)
                {
                    nbdServer["tls-creds"] = TlsCredsObject;
                    nbdServer["tls-authz"] = TlsAuthzObject;
                }
                await qmp.ExecuteAsync("nbd-server-start", nbdServer, cancellationToken).ConfigureAwait(false);
                await qmp.ExecuteAsync("block-export-add", new JsonObject
                {
                    ["type"] = "nbd",
                    ["id"] = NbdExport,
                    ["node-name"] = QemuCommandLine.DiskNode,
                    ["name"] = QemuCommandLine.DiskNode,
                    ["writable"] = true,
                }, cancellationToken).ConfigureAwait(false);
                record.DiskUri = $"nbd://{hostInUri}:{record.NbdPort.ToString(CultureInfo.InvariantCulture)}/{QemuCommandLine.DiskNode}";
            }
            record.MigrationPort = _ports.Reserve();
            record.MigrationUri = $"tcp:{hostInUri}:{record.MigrationPort.ToString(CultureInfo.InvariantCulture)}";
            await qmp.ExecuteAsync("migrate-incoming", new JsonObject { ["uri"] = record.MigrationUri }, cancellationToken).ConfigureAwait(false);
            WriteAtomically(vm.Paths.MigrationFile, JsonSerializer.Serialize(record, QemuJsonContext.Default.MigrationRecord));
            Log.Migration(_logger, vm.Id, migrationId, "prepared at " + record.MigrationUri);
            return new PrepareMigrationResponse { MigrationUri = record.MigrationUri, DiskUri = record.DiskUri };
        }
        catch (Exception ex)
        {
            Log.ActionFailed(_logger, ex, vm.Id, "prepare migration");
            await RemoveVmAsync(vm, "migration prepare failed", CancellationToken.None).ConfigureAwait(false);
            if (ex is QmpException)
            {
                throw new HypervisorException(HypervisorError.Internal, $"Preparing the migration of VM {spec.VmId} failed: {ex.Message}", ex);
            }
            throw;
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    public async IAsyncEnumerable<MigrationProgress> MigrateAsync(MigrateRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        VmSpecValidator.ValidateId(request.VmId, "VM id");
        VmSpecValidator.ValidateId(request.MigrationId, "Migration id");
        RequirePeerNode(request.PeerNode, "peer_node");
        var stream = ParseTcpUri(request.MigrationUri);
        (string Host, int Port, string Export)? disk = request.DiskUri.Length > 0 ? ParseNbdUri(request.DiskUri) : null;
        if (request.MaxBandwidthBytesPerSecond < 0 || request.DowntimeLimitMs < 0)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "Bandwidth and downtime limits must not be negative.");
        }
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var progress = Channel.CreateUnbounded<MigrationProgress>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var (vm, scope) = await LockAsync(request.VmId, cancellationToken).ConfigureAwait(false);
        Task run;
        try
        {
            if (vm.State is not (VmState.Running or VmState.Paused) || vm.Process is not { } process)
            {
                throw new HypervisorException(HypervisorError.FailedPrecondition, $"Cannot migrate VM {vm.Id} in state {vm.State}; it must be running or paused.");
            }
            if (File.Exists(vm.Paths.DiskFile) && disk is null)
            {
                throw new HypervisorException(HypervisorError.FailedPrecondition, $"VM {vm.Id} has a local disk: the migration needs the destination's disk_uri.");
            }
            var abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            vm.OutgoingMigrationId = request.MigrationId;
            vm.OutgoingAbort = abort;
            vm.Busy = "migration";
            // A paused guest arrives paused (QEMU carries the run state) and stays so if called off.
            var stateBefore = vm.State;
            SetState(vm, VmState.Migrating, "migration " + request.MigrationId);
            run = RunMigrationAsync(vm, process, request, stream, disk, stateBefore, progress.Writer, abort);
            vm.OutgoingDone = run;
        }
        catch
        {
            scope.Dispose();
            throw;
        }
        try
        {
            await foreach (var item in progress.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                yield return item;
            }
        }
        finally
        {
            await run.ConfigureAwait(false);
            scope.Dispose();
        }
    }

    private async Task RunMigrationAsync(QemuVm vm, QemuProcess process, MigrateRequest request, string streamUri, (string Host, int Port, string Export)? disk,
        VmState stateBefore, ChannelWriter<MigrationProgress> progress, CancellationTokenSource abort)
    {
        var qmp = process.Qmp;
        var token = abort.Token;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(token);
        deadline.CancelAfter(_options.MigrationTimeout);
        var mirrorStarted = false;
        var targetAdded = false;
        try
        {
            await qmp.ExecuteAsync("migrate-set-capabilities", Capabilities(
                ("auto-converge", true), ("events", true), ("pause-before-switchover", disk is not null)), token).ConfigureAwait(false);
            var tls = await AddMigrationTlsAsync(vm, qmp, request.MigrationId, request.PeerNode, server: false, token).ConfigureAwait(false);
            var parameters = new JsonObject();
            if (tls)
            {
                // No tls-hostname: QEMU checks the destination's certificate against the address
                // it connects to, the one the destination itself answered in its prepare.
                parameters["tls-creds"] = TlsCredsObject;
                parameters["tls-hostname"] = "";
            }
            if (request.DowntimeLimitMs > 0)
            {
                parameters["downtime-limit"] = request.DowntimeLimitMs;
            }
            if (request.MaxBandwidthBytesPerSecond > 0)
            {
                parameters["max-bandwidth"] = request.MaxBandwidthBytesPerSecond;
            }
            if (parameters.Count > 0)
            {
                await qmp.ExecuteAsync("migrate-set-parameters", parameters, token).ConfigureAwait(false);
            }

            if (disk is { } target)
            {
                var nbdClient = new JsonObject
                {
                    ["driver"] = "nbd",
                    ["node-name"] = MirrorTarget,
                    ["server"] = new JsonObject { ["type"] = "inet", ["host"] = target.Host, ["port"] = target.Port.ToString(CultureInfo.InvariantCulture) },
                    ["export"] = target.Export,
                };
                if (tls)
                {
                    nbdClient["tls-creds"] = TlsCredsObject;
                }
                await qmp.ExecuteAsync("blockdev-add", nbdClient, token).ConfigureAwait(false);
                targetAdded = true;
                await qmp.ExecuteAsync("blockdev-mirror", new JsonObject
                {
                    ["job-id"] = MirrorJob,
                    ["device"] = QemuCommandLine.DiskNode,
                    ["target"] = MirrorTarget,
                    // Both nodes hold the base image: only the overlay's own data travels.
                    ["sync"] = "top",
                    // Once in sync, guest writes reach the destination before they complete.
                    ["copy-mode"] = "write-blocking",
                    ["auto-dismiss"] = true,
                }, token).ConfigureAwait(false);
                mirrorStarted = true;
                while (true)
                {
                    var job = await FindBlockJobAsync(qmp, MirrorJob, token).ConfigureAwait(false)
                        ?? throw new MigrationFailedException("the disk mirror stopped before it was in sync");
                    var len = job.GetProperty("len").GetInt64();
                    var offset = job.GetProperty("offset").GetInt64();
                    progress.TryWrite(new MigrationProgress { Phase = Phase.DiskMirror, TotalBytes = len, TransferredBytes = offset, RemainingBytes = Math.Max(0, len - offset) });
                    if (job.TryGetProperty("ready", out var ready) && ready.GetBoolean())
                    {
                        break;
                    }
                    await vm.JobSignal.WaitAsync(_options.MigrationPollInterval, deadline.Token).ConfigureAwait(false);
                }
            }

            await qmp.ExecuteAsync("migrate", new JsonObject { ["uri"] = streamUri }, token).ConfigureAwait(false);
            // QEMU leaves pre-switchover a moment after migrate-continue returns: a poll in between
            // still sees it, and must not finish the (already finished) mirror a second time.
            var continued = false;
            while (true)
            {
                var info = await qmp.ExecuteAsync("query-migrate", null, token).ConfigureAwait(false);
                var status = info.TryGetProperty("status", out var s) ? s.GetString() : null;
                switch (status)
                {
                    case "completed":
                        info = await CompletedInfoAsync(qmp, info, token).ConfigureAwait(false);
                        progress.TryWrite(MemoryProgress(info, Phase.Memory));
                        await FinishSourceAsync(vm, process, request.MigrationId).ConfigureAwait(false);
                        progress.TryWrite(MemoryProgress(info, Phase.Completed));
                        return;
                    case "failed":
                        throw new MigrationFailedException((info.TryGetProperty("error-desc", out var desc) ? desc.GetString() ?? "failed" : "failed") + MemoryLayoutHint(vm, process.Runtime));
                    case "cancelled" or "cancelling":
                        throw new OperationCanceledException("The migration was cancelled in QEMU.");
                    case "pre-switchover" when !continued:
                        // The source is paused: let the mirror drain and finish without pivoting, so
                        // the destination disk equals the source disk before the destination runs.
                        await qmp.ExecuteAsync("block-job-cancel", new JsonObject { ["device"] = MirrorJob }, token).ConfigureAwait(false);
                        while (await FindBlockJobAsync(qmp, MirrorJob, token).ConfigureAwait(false) is not null)
                        {
                            await vm.JobSignal.WaitAsync(_options.MigrationPollInterval, deadline.Token).ConfigureAwait(false);
                        }
                        mirrorStarted = false;
                        await qmp.ExecuteAsync("migrate-continue", new JsonObject { ["state"] = "pre-switchover" }, token).ConfigureAwait(false);
                        continued = true;
                        break;
                    case "pre-switchover":
                        break;
                    default:
                        progress.TryWrite(MemoryProgress(info, Phase.Memory));
                        break;
                }
                await vm.JobSignal.WaitAsync(_options.MigrationPollInterval, deadline.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or MigrationFailedException or QmpException or HypervisorException or KeyNotFoundException or InvalidOperationException)
        {
            var cancelled = ex is OperationCanceledException && !deadline.IsCancellationRequested || abort.IsCancellationRequested;
            var error = cancelled ? "" : ex is OperationCanceledException ? "the migration took longer than the timeout" : ex.Message;
            Log.Migration(_logger, vm.Id, request.MigrationId, cancelled ? "cancelled" : "failed: " + error);
            await RollBackSourceAsync(vm, process, stateBefore, mirrorStarted, targetAdded).ConfigureAwait(false);
            progress.TryWrite(new MigrationProgress { Phase = cancelled ? Phase.Cancelled : Phase.Failed, Error = error });
        }
        finally
        {
            vm.Busy = null;
            vm.OutgoingMigrationId = null;
            vm.OutgoingAbort = null;
            abort.Dispose();
            progress.TryComplete();
        }
    }

    /// <summary>The guest runs on the destination now: end the source's QEMU and forget the VM here.</summary>
    private async Task FinishSourceAsync(QemuVm vm, QemuProcess process, string migrationId)
    {
        process.ExpectedExit = MigratedAway;
        try
        {
            await process.Qmp.ExecuteAsync("quit", null, TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
        }
        catch (QmpException)
        {
        }
        try
        {
            await process.Exited.Task.WaitAsync(TimeSpan.FromSeconds(10), _time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            HostProcesses.Kill(process.Pid);
            await process.Exited.Task.WaitAsync(TimeSpan.FromSeconds(30), _time).ConfigureAwait(false);
        }
        await RemoveVmAsync(vm, $"migrated away by {migrationId}", CancellationToken.None).ConfigureAwait(false);
        Log.Migration(_logger, vm.Id, migrationId, "completed");
    }

    /// <summary>After a failed or cancelled migration the source goes on as if nothing happened: running, or paused if it was.</summary>
    private async Task RollBackSourceAsync(QemuVm vm, QemuProcess process, VmState stateBefore, bool mirrorStarted, bool targetAdded)
    {
        var qmp = process.Qmp;
        if (!qmp.IsConnected)
        {
            return;
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await qmp.ExecuteAsync("migrate_cancel", null, timeout.Token).ConfigureAwait(false);
            // Wait for the cancel to settle so that the guest is not left in a migration state.
            while (true)
            {
                var info = await qmp.ExecuteAsync("query-migrate", null, timeout.Token).ConfigureAwait(false);
                var status = info.TryGetProperty("status", out var s) ? s.GetString() : null;
                if (status is not ("cancelling" or "active" or "setup" or "pre-switchover" or "device"))
                {
                    break;
                }
                await vm.JobSignal.WaitAsync(TimeSpan.FromMilliseconds(50), timeout.Token).ConfigureAwait(false);
            }
            if (mirrorStarted && await FindBlockJobAsync(qmp, MirrorJob, timeout.Token).ConfigureAwait(false) is not null)
            {
                await qmp.ExecuteAsync("block-job-cancel", new JsonObject { ["device"] = MirrorJob, ["force"] = true }, timeout.Token).ConfigureAwait(false);
                while (await FindBlockJobAsync(qmp, MirrorJob, timeout.Token).ConfigureAwait(false) is not null)
                {
                    await vm.JobSignal.WaitAsync(TimeSpan.FromMilliseconds(50), timeout.Token).ConfigureAwait(false);
                }
            }
            if (targetAdded)
            {
                await qmp.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = MirrorTarget }, timeout.Token).ConfigureAwait(false);
            }
            await RemoveMigrationTlsAsync(qmp, timeout.Token).ConfigureAwait(false);
            if (stateBefore is VmState.Running && await QueryStatusAsync(qmp, timeout.Token).ConfigureAwait(false) is not VmState.Running)
            {
                await qmp.ExecuteAsync("cont", null, timeout.Token).ConfigureAwait(false);
            }
            SetState(vm, stateBefore, "migration rolled back");
        }
        catch (Exception ex) when (ex is QmpException or OperationCanceledException or HypervisorException)
        {
            Log.ActionFailed(_logger, ex, vm.Id, "migration rollback");
            var state = qmp.IsConnected ? await QueryStatusAsync(qmp, CancellationToken.None).ConfigureAwait(false) : VmState.Crashed;
            SetState(vm, state, "migration rolled back", ex.Message);
        }
    }

    public async Task AbortMigrationAsync(string vmId, string migrationId, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateId(vmId, "VM id");
        VmSpecValidator.ValidateId(migrationId, "Migration id");
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        if (!_vms.TryGetValue(vmId, out var vm) || vm.Removed)
        {
            return;
        }
        if (vm.OutgoingMigrationId == migrationId && vm.OutgoingAbort is { } abort && vm.OutgoingDone is { } done)
        {
            try
            {
                await abort.CancelAsync().ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                // Finished meanwhile.
            }
            await done.WaitAsync(cancellationToken).ConfigureAwait(false);
            return;
        }
        await vm.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!vm.Removed && vm.Incoming?.MigrationId == migrationId && vm.State is VmState.Incoming or VmState.Stopped or VmState.Crashed)
            {
                if (vm.Process is { } process)
                {
                    process.ExpectedExit = "migration aborted";
                }
                await RemoveVmAsync(vm, $"migration {migrationId} aborted", cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <summary>
    /// The destination runs: close the NBD export the source mirrored into, and forget the
    /// migration. A stop or a restore may have ended the arrived QEMU first; the migration is
    /// forgotten all the same, or a later abort of it would take the arrived VM for a failed one.
    /// </summary>
    private async Task FinishIncomingAsync(QemuVm vm, QemuProcess process)
    {
        await vm.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            var current = vm.Process == process;
            // Another QEMU waiting for a stream is another migration's.
            if (vm.Removed || vm.Incoming is not { } record || (!current && vm.State is VmState.Incoming))
            {
                return;
            }
            try
            {
                if (current && record.NbdPort != 0)
                {
                    await process.Qmp.ExecuteAsync("block-export-del", new JsonObject { ["id"] = NbdExport, ["mode"] = "hard" }, CancellationToken.None).ConfigureAwait(false);
                    await process.Qmp.ExecuteAsync("nbd-server-stop", null, CancellationToken.None).ConfigureAwait(false);
                }
                if (current)
                {
                    await RemoveMigrationTlsAsync(process.Qmp, CancellationToken.None).ConfigureAwait(false);
                }
            }
            catch (QmpException ex)
            {
                Log.ActionFailed(_logger, ex, vm.Id, "closing the migration disk export");
            }
            _ports.Release(record.MigrationPort);
            _ports.Release(record.NbdPort);
            vm.Incoming = null;
            if (current)
            {
                process.Runtime.Incoming = false;
                SaveRuntime(vm, process.Runtime);
            }
            DeleteFiles(vm.Paths.MigrationFile);
            Log.Migration(_logger, vm.Id, record.MigrationId, "arrived");
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    private async Task DiscardFailedIncomingAsync(QemuVm vm)
    {
        await vm.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!vm.Removed && vm.Process is null && vm.Incoming is not null)
            {
                await RemoveVmAsync(vm, "incoming migration failed", CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.ActionFailed(_logger, ex, vm.Id, "discarding a failed incoming migration");
        }
        finally
        {
            vm.Gate.Release();
        }
    }
}
