using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;
using Cloud.Qmp;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace Cloud.Agent.Qemu;

public sealed partial class QemuHypervisor
{
    public async Task<Vm> CreateVmAsync(VmSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        VmSpecValidator.Validate(spec);
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        QemuVm vm;
        await _registryGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_vms.TryGetValue(spec.VmId, out var existing) && !existing.Removed)
            {
                if (!SameDefinition(existing.Spec, spec))
                {
                    throw new HypervisorException(HypervisorError.AlreadyExists, $"VM {spec.VmId} exists with a different spec.");
                }
                return Describe(existing, withUsage: false);
            }
            var stored = spec.Clone();
            stored.Shape = NormalizeShape(spec.Shape);
            vm = new QemuVm(spec.VmId, new VmPaths(_options.DataDirectory, spec.VmId), stored, _time.GetUtcNow());
            await CreateVmFilesAsync(vm, cancellationToken).ConfigureAwait(false);
            _vms[vm.Id] = vm;
        }
        finally
        {
            _registryGate.Release();
        }
        SetState(vm, VmState.Stopped, "created");
        return spec.Start ? await StartVmAsync(spec.VmId, paused: false, cancellationToken).ConfigureAwait(false) : Describe(vm, withUsage: false);
    }

    /// <summary>Same VM as far as a retried create is concerned: what it runs and its size.</summary>
    private static bool SameDefinition(VmSpec existing, VmSpec requested)
        => existing.Image == requested.Image && existing.Name == requested.Name
        && existing.Shape.Vcpus == requested.Shape.Vcpus && existing.Shape.MemoryMb == requested.Shape.MemoryMb
        && existing.Shape.DiskGb == requested.Shape.DiskGb;

    /// <summary>Upper bounds of 0 mean "same as the shape"; store them explicit, as QEMU is launched with them.</summary>
    private static VmShape NormalizeShape(VmShape shape) => new()
    {
        Vcpus = shape.Vcpus,
        MemoryMb = shape.MemoryMb,
        DiskGb = shape.DiskGb,
        MaxVcpus = Math.Max(shape.MaxVcpus, shape.Vcpus),
        MaxMemoryMb = Math.Max(shape.MaxMemoryMb, shape.MemoryMb),
    };

    /// <summary>Folder, disk and spec of a new VM. The spec is written last: a folder without one is an unfinished create.</summary>
    private async Task CreateVmFilesAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        var paths = vm.Paths;
        var image = ResolveImage(vm.Spec);
        if (Directory.Exists(paths.Directory))
        {
            Directory.Delete(paths.Directory, recursive: true);
        }
        Directory.CreateDirectory(paths.Directory);
        try
        {
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(paths.Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            Directory.CreateDirectory(paths.SnapshotsDirectory);
            await ClaimGuestIdAsync(vm, cancellationToken).ConfigureAwait(false);
            var diskBytes = vm.Spec.Shape.DiskGb * 1024L * 1024 * 1024;
            if (image is { Kind: ImageKind.Disk })
            {
                await _diskTemplates.CreateOverlayAsync(paths.DiskFile, Images.DiskPath(image), image.Format, Math.Max(diskBytes, image.VirtualSizeBytes), cancellationToken).ConfigureAwait(false);
            }
            else if (diskBytes > 0)
            {
                await _diskTemplates.CreateBlankAsync(paths.DiskFile, diskBytes, cancellationToken).ConfigureAwait(false);
            }
            await OwnGuestFilesAsync(vm, cancellationToken).ConfigureAwait(false);
            WriteAtomically(paths.SpecFile, SpecFormatter.Format(vm.Spec));
        }
        catch (Exception ex)
        {
            try
            {
                Directory.Delete(paths.Directory, recursive: true);
            }
            catch (IOException)
            {
            }
            await ReleaseGuestIdAsync(vm).ConfigureAwait(false);
            if (ex is HypervisorToolException)
            {
                throw new HypervisorException(HypervisorError.Internal, $"Cannot create the disk of VM {vm.Id}: {ex.Message}", ex);
            }
            throw;
        }
    }

    private ImageInfo? ResolveImage(VmSpec spec)
    {
        if (spec.Image.Length == 0)
        {
            return null;
        }
        var image = Images.Find(spec.Image)
            ?? throw new HypervisorException(HypervisorError.FailedPrecondition, $"Image {spec.Image} is not in this node's image store.");
        Images.MarkUsed(image.ImageId);
        return image;
    }

    public async Task<Vm> StartVmAsync(string vmId, bool paused, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var (vm, scope) = await LockAsync(vmId, cancellationToken).ConfigureAwait(false);
        using (scope)
        {
            switch (vm.State)
            {
                case VmState.Running when paused:
                    throw new HypervisorException(HypervisorError.FailedPrecondition, $"VM {vmId} is running: only a stopped VM can be started paused.");
                case VmState.Running or VmState.Incoming or VmState.Migrating:
                    return Describe(vm, withUsage: false);
                case VmState.Paused when paused:
                    return Describe(vm, withUsage: false);
                case VmState.Paused when vm.Process is { } halted:
                    await halted.Qmp.ExecuteAsync("cont", null, cancellationToken).ConfigureAwait(false);
                    SetState(vm, VmState.Running, "resumed");
                    return Describe(vm, withUsage: false);
                case VmState.Stopping when vm.Process is { } stopping:
                    throw new HypervisorException(HypervisorError.FailedPrecondition, $"VM {vmId} is stopping; start it once it has stopped.");
            }
            await LaunchAsync(vm, incoming: false, cancellationToken, paused: paused).ConfigureAwait(false);
            return Describe(vm, withUsage: false);
        }
    }

    public async Task<Vm> StopVmAsync(string vmId, bool force, TimeSpan timeout, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        if (timeout < TimeSpan.Zero)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "The stop timeout must not be negative.");
        }
        var (vm, scope) = await LockAsync(vmId, cancellationToken).ConfigureAwait(false);
        using (scope)
        {
            if (vm.State is VmState.Incoming or VmState.Migrating)
            {
                throw new HypervisorException(HypervisorError.FailedPrecondition, $"VM {vmId} is migrating; abort the migration first.");
            }
            await StopProcessAsync(vm, force, timeout, cancellationToken).ConfigureAwait(false);
            if (vm.State is VmState.Crashed)
            {
                // Stopping a crashed VM acknowledges the crash.
                SetState(vm, VmState.Stopped, "stopped after a crash");
            }
            return Describe(vm, withUsage: false);
        }
    }

    /// <summary>
    /// Graceful: ACPI power button, then after <paramref name="timeout"/> the forced path. Forced:
    /// QMP quit, then SIGKILL if QEMU does not go. Returns once the process is gone.
    /// </summary>
    private async Task StopProcessAsync(QemuVm vm, bool force, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (vm.Process is not { } process)
        {
            return;
        }
        if (!force)
        {
            process.ExpectedExit = "powered down";
            SetState(vm, VmState.Stopping, "ACPI powerdown");
            try
            {
                await process.Qmp.ExecuteAsync("system_powerdown", null, cancellationToken).ConfigureAwait(false);
                await process.Exited.Task.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (TimeoutException)
            {
                // The guest ignored the power button: fall through to the forced path.
            }
            catch (QmpDisconnectedException)
            {
            }
        }
        process.ExpectedExit = force ? "forced off" : "forced off after the powerdown timeout";
        SetState(vm, VmState.Stopping, process.ExpectedExit);
        try
        {
            await process.Qmp.ExecuteAsync("quit", null, TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        }
        catch (QmpException)
        {
            // Already going, or QMP is stuck: the kill below takes care of it.
        }
        try
        {
            await process.Exited.Task.WaitAsync(TimeSpan.FromSeconds(10), _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            HostProcesses.Kill(process.Pid);
            await process.Exited.Task.WaitAsync(TimeSpan.FromSeconds(30), _time, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<Vm> RebootVmAsync(string vmId, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var (vm, scope) = await LockAsync(vmId, cancellationToken).ConfigureAwait(false);
        using (scope)
        {
            if (vm.State is not (VmState.Running or VmState.Paused) || vm.Process is not { } process)
            {
                throw new HypervisorException(HypervisorError.FailedPrecondition, $"Cannot reboot VM {vmId} in state {vm.State}.");
            }
            await process.Qmp.ExecuteAsync("system_reset", null, cancellationToken).ConfigureAwait(false);
            if (vm.State is VmState.Paused)
            {
                await process.Qmp.ExecuteAsync("cont", null, cancellationToken).ConfigureAwait(false);
                SetState(vm, VmState.Running, "rebooted");
            }
            return Describe(vm, withUsage: false);
        }
    }

    public async Task DeleteVmAsync(string vmId, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateId(vmId, "VM id");
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        if (!_vms.TryGetValue(vmId, out var vm))
        {
            return;
        }
        await vm.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (vm.Removed)
            {
                return;
            }
            await RemoveVmAsync(vm, "deleted", cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <summary>Kills the VM's QEMU if needed and removes its folder. Caller holds the gate.</summary>
    private async Task RemoveVmAsync(QemuVm vm, string reason, CancellationToken cancellationToken)
    {
        if (vm.Process is { } process)
        {
            process.ExpectedExit = reason;
            await StopProcessAsync(vm, force: true, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
        }
        if (vm.Incoming is { } incoming)
        {
            _ports.Release(incoming.MigrationPort);
            _ports.Release(incoming.NbdPort);
            vm.Incoming = null;
        }
        if (Directory.Exists(vm.Paths.Directory))
        {
            // Rename first: a crash halfway through deleting never leaves a folder that looks like a VM.
            var doomed = Path.Combine(_vmsRoot, ".deleting-" + vm.Id + "-" + Guid.NewGuid().ToString("N")[..8]);
            Directory.Move(vm.Paths.Directory, doomed);
            Directory.Delete(doomed, recursive: true);
        }
        DeleteFiles(vm.Paths.QmpSocket);
        await ReleaseGuestIdAsync(vm).ConfigureAwait(false);
        vm.Removed = true;
        _vms.TryRemove(new KeyValuePair<string, QemuVm>(vm.Id, vm));
        SetState(vm, VmState.Deleted, reason);
    }

    /// <summary>
    /// Starts QEMU for the VM and waits until its monitor answers. Caller holds the gate.
    /// <paramref name="memoryLayout"/> (an incoming migration's, or a memory snapshot's) makes it
    /// boot with that RAM and those DIMMs rather than with memory_mb. <paramref name="loadsState"/>
    /// starts it waiting for a saved memory state (a snapshot's restore) while the VM stays STARTING.
    /// </summary>
    private async Task LaunchAsync(QemuVm vm, bool incoming, CancellationToken cancellationToken, MemoryLayout? memoryLayout = null, bool paused = false,
        bool loadsState = false, int? bootVcpus = null)
    {
        var paths = vm.Paths;
        var image = ResolveImage(vm.Spec);
        var shape = vm.Spec.Shape;
        var vcpus = bootVcpus ?? shape.Vcpus;
        DeleteFiles(paths.QmpSocket, paths.PidFile, paths.RuntimeFile);
        Directory.CreateDirectory(Path.GetDirectoryName(paths.QmpSocket)!);
        var windows = OperatingSystem.IsWindows();
        int qmpPort = 0;
        QmpEndpoint endpoint;
        if (windows && _options.WindowsQmpTransport == "pipe")
        {
            endpoint = QmpEndpoint.Pipe(paths.QmpPipeName);
        }
        else if (windows)
        {
            qmpPort = _ports.Reserve();
            File.WriteAllText(paths.QmpPortFile, qmpPort.ToString(CultureInfo.InvariantCulture));
            endpoint = QmpEndpoint.Tcp(IPAddress.Loopback, qmpPort);
        }
        else
        {
            endpoint = QmpEndpoint.Unix(paths.QmpSocket);
        }
        await OwnGuestFilesAsync(vm, cancellationToken).ConfigureAwait(false);
        var bootMemoryMb = memoryLayout?.BootMemoryMb ?? shape.MemoryMb;
        var dimms = memoryLayout?.Dimms.Select(d => new DimmRecord { Id = d.Id, SizeMb = d.SizeMb }).ToList() ?? [];
        var launch = new QemuLaunchSpec
        {
            VmId = vm.Id,
            Accelerator = _accelerator,
            Windows = windows,
            MachineType = _options.MachineType,
            Vcpus = vcpus,
            MaxVcpus = Math.Max(shape.MaxVcpus, vcpus),
            MemoryMb = bootMemoryMb,
            MaxMemoryMb = Math.Max(shape.MaxMemoryMb, shape.MemoryMb),
            MemorySlots = _options.MemorySlots,
            Dimms = dimms,
            DiskPath = File.Exists(paths.DiskFile) ? paths.DiskFile : null,
            KernelPath = image is { Kind: ImageKind.Kernel } ? Images.KernelPath(image) : null,
            InitrdPath = image is { Kind: ImageKind.Kernel } ? Images.InitrdPath(image) : null,
            KernelAppend = image is { Kind: ImageKind.Kernel } ? image.KernelAppend : null,
            Qmp = endpoint,
            SerialLogPath = paths.SerialLog,
            AppendSerialLog = loadsState,
            PidFilePath = paths.PidFile,
            RunAsUser = RunAs(vm),
            Incoming = incoming || loadsState,
            Paused = paused,
        };
        var args = QemuCommandLine.Build(launch);
        SetState(vm, incoming ? VmState.Incoming : VmState.Starting, incoming ? "waiting for migration" : "starting");
        vm.Error = "";
        Process child;
        try
        {
            child = StartQemuProcess(args, paths);
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            SetState(vm, VmState.Stopped, "QEMU could not be started", ex.Message);
            throw new HypervisorException(HypervisorError.Unavailable, $"Cannot run {_options.QemuBinary}: {ex.Message}", ex);
        }

        QmpClient qmp;
        var qmpOptions = new QmpClientOptions { CommandTimeout = _options.QmpTimeout, ConnectTimeout = _options.StartTimeout };
        var connect = QmpClient.ConnectAsync(endpoint, qmpOptions, cancellationToken);
        var exited = child.WaitForExitAsync(CancellationToken.None);
        try
        {
            if (await Task.WhenAny(connect, exited).ConfigureAwait(false) == exited)
            {
                _ = connect.ContinueWith(t => t.Result.DisposeAsync(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
                throw new HypervisorException(HypervisorError.Internal, $"QEMU exited at start (code {child.ExitCode}): {ReadLogTail(paths.QemuLog)}");
            }
            qmp = await connect.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            if (!child.HasExited)
            {
                HostProcesses.Kill(child.Id);
            }
            child.Dispose();
            if (qmpPort != 0)
            {
                _ports.Release(qmpPort);
            }
            var message = ex is HypervisorException ? ex.Message : $"QEMU did not answer on its monitor: {ex.Message}. {ReadLogTail(paths.QemuLog)}";
            SetState(vm, VmState.Stopped, "QEMU failed to start", message);
            throw ex as HypervisorException ?? new HypervisorException(HypervisorError.Internal, message, ex);
        }
        if (!windows)
        {
            File.SetUnixFileMode(paths.QmpSocket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        // QEMU writes its pid file before its monitor listens; it is the truth if a wrapper forked.
        var pid = ReadPidFile(paths.PidFile) ?? child.Id;
        var runtime = new RuntimeRecord
        {
            BootVcpus = vcpus,
            BootMemoryMb = bootMemoryMb,
            Dimms = dimms,
            BalloonTargetMb = shape.MemoryMb,
            Incoming = incoming,
        };
        var process = new QemuProcess(pid, qmp, pid == child.Id ? child : null, runtime);
        vm.Process = process;
        vm.LastCpu = null;
        vm.LastUsage = null;
        SaveRuntime(vm, runtime);
        process.Pump = Task.Run(() => PumpAsync(vm, process), CancellationToken.None);
        Log.QemuStarted(_logger, vm.Id, pid);
        var status = await QueryStatusAsync(qmp, cancellationToken).ConfigureAwait(false);
        if (!incoming && !loadsState)
        {
            SetState(vm, status, paused ? "started paused" : "started");
        }
    }

    private Process StartQemuProcess(IReadOnlyList<string> args, VmPaths paths)
    {
        ProcessStartInfo info;
        if (OperatingSystem.IsWindows())
        {
            info = new ProcessStartInfo(_options.QemuBinary) { UseShellExecute = false, CreateNoWindow = true, WorkingDirectory = paths.Directory };
            foreach (var arg in args)
            {
                info.ArgumentList.Add(arg);
            }
        }
        else
        {
            // The shell sets a private umask (socket, pid file and logs readable by the agent only),
            // sends QEMU's output to qemu.log and puts QEMU in its own session, so that it outlives the
            // agent and no terminal signal aimed at the agent reaches it. QEMU cannot do this itself:
            // -daemonize forks, which -sandbox spawn=deny forbids.
            info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = paths.Directory };
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add("umask 077 && exec setsid \"$@\" </dev/null >>\"$QEMU_LOG\" 2>&1");
            info.ArgumentList.Add("sh");
            info.ArgumentList.Add(_options.QemuBinary);
            foreach (var arg in args)
            {
                info.ArgumentList.Add(arg);
            }
            info.Environment["QEMU_LOG"] = paths.QemuLog;
            info.Environment["LC_ALL"] = "C";
        }
        return Process.Start(info) ?? throw new InvalidOperationException("Process.Start returned no process.");
    }

    private static int? ReadPidFile(string path)
    {
        try
        {
            return int.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 0 ? pid : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string ReadLogTail(string path)
    {
        try
        {
            var text = File.ReadAllText(path).Trim();
            return text.Length > 600 ? text[^600..] : text;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "(no QEMU log)";
        }
    }

    private static void SaveRuntime(QemuVm vm, RuntimeRecord runtime)
        => WriteAtomically(vm.Paths.RuntimeFile, JsonSerializer.Serialize(runtime, QemuJsonContext.Default.RuntimeRecord));

    private static async Task<VmState> QueryStatusAsync(QmpClient qmp, CancellationToken cancellationToken)
    {
        var reply = await qmp.ExecuteAsync("query-status", null, cancellationToken).ConfigureAwait(false);
        if (reply.ValueKind != JsonValueKind.Object || !reply.TryGetProperty("status", out var status) || status.ValueKind != JsonValueKind.String)
        {
            throw new HypervisorException(HypervisorError.Internal, $"query-status returned an unexpected reply: {reply}");
        }
        return status.GetString() switch
        {
            "running" => VmState.Running,
            "inmigrate" => VmState.Incoming,
            "shutdown" => VmState.Stopping,
            "finish-migrate" or "postmigrate" => VmState.Migrating,
            _ => VmState.Paused,
        };
    }

    /// <summary>Turns QMP events into state changes, then handles QEMU's exit when the monitor closes.</summary>
    private async Task PumpAsync(QemuVm vm, QemuProcess process)
    {
        var reader = process.Qmp.Events;
        var disconnected = process.Qmp.Disconnected;
        try
        {
            while (true)
            {
                var more = reader.WaitToReadAsync().AsTask();
                var done = await Task.WhenAny(more, disconnected).ConfigureAwait(false);
                while (reader.TryRead(out var qmpEvent))
                {
                    OnQmpEvent(vm, process, qmpEvent);
                }
                if (done == disconnected || !await more.ConfigureAwait(false))
                {
                    break;
                }
            }
            await OnQemuGoneAsync(vm, process).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.ActionFailed(_logger, ex, vm.Id, "event handling");
            process.Exited.TrySetResult();
        }
    }

    private void OnQmpEvent(QemuVm vm, QemuProcess process, QmpEvent qmpEvent)
    {
        Log.QmpEvent(_logger, vm.Id, qmpEvent.Name);
        switch (qmpEvent.Name)
        {
            case "SHUTDOWN":
                process.ShutdownReason = qmpEvent.Data.TryGetProperty("reason", out var reason) && reason.ValueKind == JsonValueKind.String
                    ? reason.GetString()
                    : "unknown";
                if (vm.State is VmState.Running or VmState.Paused && process.ExpectedExit is null)
                {
                    SetState(vm, VmState.Stopping, process.ShutdownReason!);
                }
                break;
            case "STOP" when vm.Busy is null && vm.State is VmState.Running:
                SetState(vm, VmState.Paused, "paused");
                break;
            case "RESUME" when vm.Busy is null && vm.State is VmState.Paused or VmState.Starting:
                SetState(vm, VmState.Running, "resumed");
                break;
            case "RESUME" when vm.State is VmState.Incoming:
                SetState(vm, VmState.Running, "incoming migration completed");
                _ = Task.Run(() => FinishIncomingAsync(vm, process));
                break;
            case "MIGRATION" when vm.State is VmState.Incoming && IsCompleted(qmpEvent):
                // QEMU reports completion after it set the guest's run state: a guest that left
                // the source running has resumed (above), one that left it paused stays paused.
                SetState(vm, VmState.Paused, "incoming migration completed, paused as on the source");
                _ = Task.Run(() => FinishIncomingAsync(vm, process));
                vm.JobSignal.Release();
                break;
            case "RESET" when vm.Busy is null:
                PublishEvent(vm, "reset");
                break;
            case "MIGRATION" or "BLOCK_JOB_READY" or "BLOCK_JOB_COMPLETED" or "BLOCK_JOB_CANCELLED" or "BLOCK_JOB_ERROR" or "JOB_STATUS_CHANGE":
                vm.JobSignal.Release();
                break;
        }
    }

    private static bool IsCompleted(QmpEvent migration)
        => migration.Data.ValueKind == JsonValueKind.Object
            && migration.Data.TryGetProperty("status", out var status)
            && status.ValueKind == JsonValueKind.String
            && status.GetString() == "completed";

    private async Task OnQemuGoneAsync(QemuVm vm, QemuProcess process)
    {
        if (process.Detached)
        {
            process.Exited.TrySetResult();
            return;
        }
        // The monitor closes a moment before the process is reaped; wait for it to be really gone.
        // A QEMU this agent started is its child, whose exit the runtime reports at once; a
        // re-adopted one can only be polled.
        if (process.Child is { } started)
        {
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10), _time);
            try
            {
                await started.WaitForExitAsync(wait.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
        var deadline = _time.GetUtcNow() + TimeSpan.FromSeconds(10);
        while (HostProcesses.IsAlive(process.Pid) && _time.GetUtcNow() < deadline)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(20), _time).ConfigureAwait(false);
        }
        if (HostProcesses.IsAlive(process.Pid))
        {
            // A QEMU without its monitor cannot be managed: make the loss definite.
            HostProcesses.Kill(process.Pid);
        }
        var exitCode = process.Child is { HasExited: true } child ? child.ExitCode : (int?)null;
        string? crash = null;
        string reason;
        lock (vm.StateLock)
        {
            if (vm.Process == process)
            {
                vm.Process = null;
            }
            if (process.ExpectedExit is { } expected)
            {
                reason = expected;
            }
            else if (process.ShutdownReason is { } shutdown and not "guest-panic")
            {
                reason = shutdown;
            }
            else
            {
                reason = "QEMU exited unexpectedly" + (exitCode is { } code ? $" (exit code {code})" : "");
                var tail = ReadLogTail(vm.Paths.QemuLog);
                crash = tail.Length > 0 && tail != "(no QEMU log)" ? reason + ": " + tail : reason;
            }
        }
        DeleteFiles(vm.Paths.PidFile, vm.Paths.RuntimeFile, vm.Paths.QmpSocket, vm.Paths.QmpPortFile);
        var wasIncoming = vm.State is VmState.Incoming;
        if (process.ExpectedExit == MigratedAway)
        {
            // The migration code reports the VM as gone; it never was "stopped".
        }
        else if (crash is not null)
        {
            Log.QemuCrashed(_logger, vm.Id, crash);
            SetState(vm, VmState.Crashed, reason, crash);
        }
        else
        {
            SetState(vm, VmState.Stopped, reason);
        }
        process.Exited.TrySetResult();
        await process.Qmp.DisposeAsync().ConfigureAwait(false);
        process.Child?.Dispose();
        if (wasIncoming && process.ExpectedExit is null)
        {
            // An incoming migration that failed: the destination keeps nothing of it.
            _ = Task.Run(() => DiscardFailedIncomingAsync(vm));
        }
    }

    /// <summary>Current usage from the QEMU process: CPU time since the last sample, and resident memory.</summary>
    private VmUsage? SampleUsage(QemuVm vm, QemuProcess process)
    {
        var now = _time.GetUtcNow();
        if (OperatingSystem.IsLinux())
        {
            var cpu = HostProcesses.ReadCpu(process.Pid);
            var uptime = HostProcesses.ReadUptimeSeconds();
            var rss = HostProcesses.ReadRssBytes(process.Pid);
            if (cpu is not { } c || uptime is not { } up || rss is not { } r)
            {
                return vm.LastUsage;
            }
            double utilization;
            if (vm.LastCpu is { } last)
            {
                // Tick counts are coarse (10 ms): below a second between samples the ratio is noise.
                if (up - last.Seconds < 1.0 && vm.LastUsage is { } previous)
                {
                    return new VmUsage { CpuUtilization = previous.CpuUtilization, MemoryUsedMb = r / (1024 * 1024), SampledAt = Timestamp.FromDateTimeOffset(now) };
                }
                utilization = (c.CpuTicks - last.Ticks) / HostProcesses.ClockTicksPerSecond / Math.Max(up - last.Seconds, 0.001);
            }
            else
            {
                var lifetime = up - c.StartTicks / HostProcesses.ClockTicksPerSecond;
                utilization = lifetime > 0 ? c.CpuTicks / HostProcesses.ClockTicksPerSecond / lifetime : 0;
            }
            vm.LastCpu = new CpuSample(c.CpuTicks, up);
            vm.LastUsage = new VmUsage
            {
                CpuUtilization = Math.Round(Math.Max(0, utilization), 3),
                MemoryUsedMb = r / (1024 * 1024),
                SampledAt = Timestamp.FromDateTimeOffset(now),
            };
            return vm.LastUsage;
        }
        try
        {
            using var p = Process.GetProcessById(process.Pid);
            var seconds = p.TotalProcessorTime.TotalSeconds;
            var wall = (now - p.StartTime.ToUniversalTime()).TotalSeconds;
            return new VmUsage { CpuUtilization = wall > 0 ? seconds / wall : 0, MemoryUsedMb = p.WorkingSet64 / (1024 * 1024), SampledAt = Timestamp.FromDateTimeOffset(now) };
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Finds the VMs of a previous agent in DataDirectory/vms and re-attaches to the QEMUs still running.</summary>
    private async Task AdoptAllAsync(CancellationToken cancellationToken)
    {
        foreach (var dir in Directory.EnumerateDirectories(_vmsRoot))
        {
            var name = Path.GetFileName(dir);
            if (name.StartsWith(".deleting-", StringComparison.Ordinal))
            {
                Directory.Delete(dir, recursive: true);
                continue;
            }
            if (!VmSpecValidator.IsSafeId(name))
            {
                Log.IgnoredVmDirectory(_logger, dir, "not a valid VM id");
                continue;
            }
            var paths = new VmPaths(_options.DataDirectory, name);
            if (!File.Exists(paths.SpecFile))
            {
                // A create that never finished: nobody was told the VM exists.
                Log.IgnoredVmDirectory(_logger, dir, "no vm.json (unfinished create); removing");
                Directory.Delete(dir, recursive: true);
                continue;
            }
            VmSpec spec;
            try
            {
                spec = JsonParser.Default.Parse<VmSpec>(await File.ReadAllTextAsync(paths.SpecFile, cancellationToken).ConfigureAwait(false));
                VmSpecValidator.Validate(spec);
                if (spec.VmId != name)
                {
                    throw new InvalidDataException($"vm.json names VM '{spec.VmId}'");
                }
            }
            catch (Exception ex) when (ex is InvalidProtocolBufferException or InvalidJsonException or HypervisorException or InvalidDataException)
            {
                Log.IgnoredVmDirectory(_logger, dir, "unreadable vm.json: " + ex.Message);
                continue;
            }
            var vm = new QemuVm(name, paths, spec, _time.GetUtcNow());
            if (File.Exists(paths.MigrationFile))
            {
                vm.Incoming = JsonSerializer.Deserialize(await File.ReadAllTextAsync(paths.MigrationFile, cancellationToken).ConfigureAwait(false), QemuJsonContext.Default.MigrationRecord);
            }
            _vms[name] = vm;
            await AdoptGuestIdAsync(vm, cancellationToken).ConfigureAwait(false);
            await AdoptAsync(vm, cancellationToken).ConfigureAwait(false);
            SettleInterruptedRestore(vm);
            await KeepEarlierSnapshotsAsync(vm, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task AdoptAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        var paths = vm.Paths;
        var pid = ReadPidFile(paths.PidFile);
        if (pid is null)
        {
            SetState(vm, VmState.Stopped, "found stopped");
            return;
        }
        // The pid must still be this VM's QEMU (pids are reused): its command line names our socket.
        var cmdline = HostProcesses.IsAlive(pid.Value) ? HostProcesses.ReadCommandLine(pid.Value) : null;
        // Windows: a port file means the TCP transport; without one QEMU was started on the pipe.
        var endpoint = !OperatingSystem.IsWindows() ? QmpEndpoint.Unix(paths.QmpSocket)
            : File.Exists(paths.QmpPortFile) ? QmpEndpoint.Tcp(IPAddress.Loopback, int.Parse(File.ReadAllText(paths.QmpPortFile).Trim(), CultureInfo.InvariantCulture))
            : QmpEndpoint.Pipe(paths.QmpPipeName);
        if (cmdline is null || (!OperatingSystem.IsWindows() && !cmdline.Contains(paths.QmpSocket, StringComparison.Ordinal)))
        {
            DeleteFiles(paths.PidFile, paths.RuntimeFile, paths.QmpSocket);
            if (vm.Incoming is not null)
            {
                await RemoveVmAsync(vm, "incoming migration lost while the agent was down", cancellationToken).ConfigureAwait(false);
                return;
            }
            SetState(vm, VmState.Crashed, "QEMU exited while the agent was not running", "QEMU exited while the agent was not running");
            return;
        }
        QmpClient qmp;
        try
        {
            qmp = await QmpClient.ConnectAsync(endpoint, new QmpClientOptions { CommandTimeout = _options.QmpTimeout, ConnectTimeout = TimeSpan.FromSeconds(5) }, cancellationToken).ConfigureAwait(false);
        }
        catch (QmpException ex)
        {
            SetState(vm, VmState.Crashed, "QEMU is running but its monitor does not answer", ex.Message);
            return;
        }
        RuntimeRecord runtime;
        try
        {
            runtime = File.Exists(paths.RuntimeFile)
                ? JsonSerializer.Deserialize(await File.ReadAllTextAsync(paths.RuntimeFile, cancellationToken).ConfigureAwait(false), QemuJsonContext.Default.RuntimeRecord) ?? new RuntimeRecord()
                : new RuntimeRecord { BootVcpus = vm.Spec.Shape.Vcpus, BootMemoryMb = vm.Spec.Shape.MemoryMb, BalloonTargetMb = vm.Spec.Shape.MemoryMb };
        }
        catch (JsonException)
        {
            runtime = new RuntimeRecord { BootVcpus = vm.Spec.Shape.Vcpus, BootMemoryMb = vm.Spec.Shape.MemoryMb, BalloonTargetMb = vm.Spec.Shape.MemoryMb };
        }
        var process = new QemuProcess(pid.Value, qmp, null, runtime);
        vm.Process = process;
        process.Pump = Task.Run(() => PumpAsync(vm, process), CancellationToken.None);
        var state = await QueryStatusAsync(qmp, cancellationToken).ConfigureAwait(false);
        SetState(vm, state, "re-adopted");
        if (vm.Incoming is not null && state is not VmState.Incoming)
        {
            // The guest arrived while the agent was down: close what the migration left open.
            _ = Task.Run(() => FinishIncomingAsync(vm, process), CancellationToken.None);
        }
        Log.Adopted(_logger, vm.Id, pid.Value);
    }
}
