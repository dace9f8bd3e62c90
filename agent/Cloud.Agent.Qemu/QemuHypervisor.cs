using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Cloud.Agent.Qemu;

/// <summary>
/// The QEMU backend: one QEMU process per VM, driven through QMP. Everything a VM is lives in its
/// folder under DataDirectory/vms, and QEMU runs detached from the agent (its own session), so a
/// new instance over the same DataDirectory re-adopts the guests that are still running.
/// Disposing the instance lets go of the QEMU processes without stopping them.
/// </summary>
public sealed partial class QemuHypervisor : IHypervisor, IAsyncDisposable
{
    private static readonly JsonFormatter SpecFormatter = new(JsonFormatter.Settings.Default.WithIndentation());

    private readonly QemuOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Accelerator _accelerator;
    private readonly ConcurrentDictionary<string, QemuVm> _vms = new(StringComparer.Ordinal);
    private readonly EventHub _events = new();
    private readonly QemuImg _qemuImg;
    private readonly DiskTemplates _diskTemplates;
    private readonly PortAllocator _ports;
    private readonly SemaphoreSlim _registryGate = new(1, 1);
    private readonly SemaphoreSlim _initGate = new(1, 1);
    private readonly string _vmsRoot;
    private volatile bool _initialized;
    private string? _qemuVersion;
    private bool _disposed;

    /// <param name="options">Validated here as well as at host start, so a direct construction fails just as clearly.</param>
    /// <param name="loggerFactory">Where the backend logs; none when null.</param>
    /// <param name="time">Clock for state timestamps and waits; the system clock when null.</param>
    public QemuHypervisor(QemuOptions options, ILoggerFactory? loggerFactory = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = QemuOptionsValidator.Check(options, AcceleratorProbe.ForHost(options.QemuBinary));
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(QemuOptions.SectionName, typeof(QemuOptions), failures);
        }
        _options = options;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<QemuHypervisor>();
        _time = time ?? TimeProvider.System;
        AcceleratorSelector.TryParse(options.Accelerator, out var choice);
        _accelerator = AcceleratorSelector.Select(choice, AcceleratorProbe.ForHost(options.QemuBinary)).Accelerator;
        _qemuImg = new QemuImg(options.QemuImgBinary);
        _diskTemplates = new DiskTemplates(Path.Combine(options.DataDirectory, "templates"), _qemuImg);
        PortRange.TryParse(options.MigrationPortRange, out var range);
        _ports = new PortAllocator(range, System.Net.IPAddress.Parse(options.ListenAddress));
        Directory.CreateDirectory(options.DataDirectory);
        _vmsRoot = Path.Combine(options.DataDirectory, "vms");
        Directory.CreateDirectory(_vmsRoot);
        if (!OperatingSystem.IsWindows())
        {
            // Other users may traverse (QEMU, once it has dropped to its guest's uid) but not list.
            File.SetUnixFileMode(options.DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
            File.SetUnixFileMode(_vmsRoot, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        }
        Images = new QemuImageStore(Path.Combine(options.DataDirectory, "images"), _qemuImg, _time, OpenImageToProbeAsync, SealImageAsync);
    }

    public string Name => "qemu";

    /// <summary>The node's image store (images VMs are created from, and snapshot exports).</summary>
    public QemuImageStore Images { get; }

    /// <summary>The accelerator guests run with.</summary>
    public Accelerator Accelerator => _accelerator;

    public async Task<NodeInfo> GetNodeInfoAsync(CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var info = new NodeInfo
        {
            NodeName = _options.NodeName,
            Hypervisor = Name,
            Accelerator = _accelerator,
            HypervisorVersion = _qemuVersion ?? "",
            AvailabilityZone = _options.AvailabilityZone,
            AgentVersion = typeof(QemuHypervisor).Assembly.GetName().Version?.ToString() ?? "0",
        };
        var vcpus = _options.TotalVcpus > 0 ? _options.TotalVcpus : Environment.ProcessorCount;
        var memoryMb = _options.TotalMemoryMb > 0 ? _options.TotalMemoryMb : HostResources.MemoryMb();
        var diskGb = _options.TotalDiskGb > 0 ? _options.TotalDiskGb : HostResources.DiskGb(_options.DataDirectory);
        info.Inventories.Add(Inventory("VCPU", vcpus, _options.ReservedVcpus, _options.CpuAllocationRatio));
        info.Inventories.Add(Inventory("MEMORY_MB", memoryMb, _options.ReservedMemoryMb, _options.MemoryAllocationRatio));
        info.Inventories.Add(Inventory("DISK_GB", diskGb, _options.ReservedDiskGb, _options.DiskAllocationRatio));
        info.Traits.Add("HW_ARCH_X86_64");
        info.Traits.Add("COMPUTE_ACCEL_" + QemuCommandLine.AccelName(_accelerator).ToUpperInvariant());
        info.Traits.Add("COMPUTE_LIVE_MIGRATION");
        info.Traits.Add("COMPUTE_HOTPLUG_VCPU");
        info.Traits.Add("COMPUTE_HOTPLUG_MEMORY");
        info.Traits.Add("COMPUTE_SNAPSHOT_MEMORY");
        return info;
    }

    private static Inventory Inventory(string resourceClass, long total, long reserved, double ratio) => new()
    {
        ResourceClass = resourceClass,
        Total = total,
        Reserved = Math.Min(reserved, total),
        AllocationRatio = ratio,
        MinUnit = 1,
        MaxUnit = total,
        StepSize = 1,
    };

    public async Task<IReadOnlyList<Vm>> ListVmsAsync(CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return [.. _vms.Values.OrderBy(v => v.Id, StringComparer.Ordinal).Select(v =>
        {
            var described = Describe(v, withUsage: true);
            described.SnapshotIds.AddRange(v.SnapshotIds(() => [.. ReadSnapshots(v).Select(r => r.SnapshotId)]));
            return described;
        })];
    }

    /// <summary>QEMU's own run state of a VM (query-status: running, paused, inmigrate ...), for diagnostics.</summary>
    internal async Task<string> QueryRunStatusAsync(string vmId, CancellationToken cancellationToken)
    {
        var reply = await QueryQemuAsync(vmId, "query-status", cancellationToken).ConfigureAwait(false);
        return reply is { } status && status.TryGetProperty("status", out var value) ? value.GetString() ?? "" : "not-running";
    }

    /// <summary>What QEMU answers to a query command, through the VM's own monitor connection; null when no QEMU runs.</summary>
    internal Task<JsonElement?> QueryQemuAsync(string vmId, string command, CancellationToken cancellationToken)
        => QueryQemuAsync(vmId, command, null, cancellationToken);

    /// <summary>The same, for a query that takes arguments (qom-list of /objects ...).</summary>
    internal async Task<JsonElement?> QueryQemuAsync(string vmId, string command, System.Text.Json.Nodes.JsonObject? arguments, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        if (Get(vmId).Process is not { } process)
        {
            return null;
        }
        return await process.Qmp.ExecuteAsync(command, arguments, cancellationToken).ConfigureAwait(false);
    }

    public IAsyncEnumerable<VmEvent> WatchEventsAsync(CancellationToken cancellationToken) => _events.WatchAsync(cancellationToken);

    /// <summary>The VM as the API shows it.</summary>
    private Vm Describe(QemuVm vm, bool withUsage)
    {
        lock (vm.StateLock)
        {
            var result = new Vm
            {
                VmId = vm.Id,
                Name = vm.Spec.Name,
                State = vm.State,
                Shape = vm.Spec.Shape.Clone(),
                Pid = vm.Process?.Pid ?? 0,
                Error = vm.Error,
                StateSince = Timestamp.FromDateTimeOffset(vm.StateSince),
            };
            if (vm.Process is { } running)
            {
                result.MemoryLayout = DescribeMemory(running.Runtime);
            }
            if (withUsage && vm.Process is { } process)
            {
                result.Usage = SampleUsage(vm, process);
            }
            return result;
        }
    }

    private static MemoryLayout DescribeMemory(RuntimeRecord runtime)
    {
        var layout = new MemoryLayout { BootMemoryMb = runtime.BootMemoryMb };
        // A live resize may be adding a DIMM right now: read a copy of the list.
        foreach (var dimm in runtime.Dimms.ToArray())
        {
            layout.Dimms.Add(new MemoryDimm { Id = dimm.Id, SizeMb = dimm.SizeMb });
        }
        return layout;
    }

    private void SetState(QemuVm vm, VmState state, string reason, string? error = null)
    {
        VmEvent vmEvent;
        lock (vm.StateLock)
        {
            vm.State = state;
            vm.StateSince = _time.GetUtcNow();
            if (error is not null)
            {
                vm.Error = error;
            }
            else if (state is VmState.Running or VmState.Stopped)
            {
                vm.Error = "";
            }
            vmEvent = new VmEvent { VmId = vm.Id, State = state, Reason = reason, At = Timestamp.FromDateTimeOffset(vm.StateSince) };
        }
        Log.StateChanged(_logger, vm.Id, state.ToString(), reason);
        _events.Publish(vmEvent);
    }

    private void PublishEvent(QemuVm vm, string reason)
    {
        VmEvent vmEvent;
        lock (vm.StateLock)
        {
            vmEvent = new VmEvent { VmId = vm.Id, State = vm.State, Reason = reason, At = Timestamp.FromDateTimeOffset(_time.GetUtcNow()) };
        }
        _events.Publish(vmEvent);
    }

    private QemuVm Get(string vmId)
    {
        VmSpecValidator.ValidateId(vmId, "VM id");
        return _vms.TryGetValue(vmId, out var vm) && !vm.Removed
            ? vm
            : throw new HypervisorException(HypervisorError.NotFound, $"VM {vmId} is not on this node.");
    }

    /// <summary>Takes the VM's operation gate; the returned scope releases it.</summary>
    private async Task<(QemuVm Vm, GateScope Scope)> LockAsync(string vmId, CancellationToken cancellationToken)
    {
        var vm = Get(vmId);
        await vm.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (vm.Removed)
        {
            vm.Gate.Release();
            throw new HypervisorException(HypervisorError.NotFound, $"VM {vmId} is not on this node.");
        }
        return (vm, new GateScope(vm.Gate));
    }

    private readonly struct GateScope(SemaphoreSlim gate) : IDisposable
    {
        public void Dispose() => gate.Release();
    }

    private async Task EnsureInitializedAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_initialized)
        {
            return;
        }
        await _initGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_initialized)
            {
                return;
            }
            _qemuVersion = await ReadQemuVersionAsync(cancellationToken).ConfigureAwait(false);
            InitializeGuestIds();
            await AdoptAllAsync(cancellationToken).ConfigureAwait(false);
            Log.BackendReady(_logger, QemuCommandLine.AccelName(_accelerator), _qemuVersion, _options.DataDirectory);
            _initialized = true;
        }
        catch (HypervisorToolException ex)
        {
            throw new HypervisorException(HypervisorError.Unavailable, ex.Message, ex);
        }
        finally
        {
            _initGate.Release();
        }
    }

    private async Task<string> ReadQemuVersionAsync(CancellationToken cancellationToken)
    {
        var result = await ProcessRunner.RunAsync(_options.QemuBinary, ["--version"], TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        var firstLine = result.Stdout.Split('\n')[0];
        const string prefix = "QEMU emulator version ";
        if (result.ExitCode != 0 || !firstLine.StartsWith(prefix, StringComparison.Ordinal))
        {
            throw new HypervisorToolException($"{_options.QemuBinary} --version did not identify QEMU: {result.ErrorText}");
        }
        return firstLine[prefix.Length..].Trim();
    }

    private static void WriteAtomically(string path, string content)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, content);
        File.Move(tmp, path, overwrite: true);
    }

    private static void DeleteFiles(params string[] paths)
    {
        foreach (var path in paths)
        {
            try
            {
                File.Delete(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>Lets go of every QEMU without stopping it (an agent restart re-adopts them).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (var vm in _vms.Values)
        {
            if (vm.Process is { } process)
            {
                process.Detached = true;
                await process.Qmp.DisposeAsync().ConfigureAwait(false);
                if (process.Pump is { } pump)
                {
                    await pump.ConfigureAwait(false);
                }
                process.Child?.Dispose();
            }
        }
    }
}
