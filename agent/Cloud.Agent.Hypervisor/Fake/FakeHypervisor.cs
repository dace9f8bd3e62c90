using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Cloud.Contracts.Agent.V1;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Options;

namespace Cloud.Agent.Hypervisor.Fake;

/// <summary>
/// VMs simulated in memory, for scale simulation (thousands of hollow nodes in one process).
/// Follows the same state machine and idempotency rules as the QEMU backend, with latencies
/// taken from <see cref="FakeHypervisorOptions"/>.
/// </summary>
public sealed class FakeHypervisor : IHypervisor
{
    /// <summary>
    /// Every fake node of the process, so that the destination of a migration can take the VM's
    /// snapshots from its source before the move, as a real destination pulls their files
    /// (PrepareMigrationRequest.snapshot_source). Weak: a node that went away is forgotten.
    /// </summary>
    private static readonly ConditionalWeakTable<FakeHypervisor, object?> Peers = [];

    private readonly FakeHypervisorOptions _options;
    private readonly TimeProvider _time;
    private readonly string _nodeName;
    private readonly ConcurrentDictionary<string, FakeVm> _vms = new(StringComparer.Ordinal);
    private readonly EventHub _events = new();

    public FakeHypervisor(IOptions<FakeHypervisorOptions> options, TimeProvider time, string nodeName)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _time = time;
        _nodeName = nodeName;
        Peers.AddOrUpdate(this, null);
    }

    public string Name => "fake";

    public Task<NodeInfo> GetNodeInfoAsync(CancellationToken cancellationToken)
    {
        var info = new NodeInfo
        {
            NodeName = _nodeName,
            Hypervisor = Name,
            Accelerator = Accelerator.Fake,
            HypervisorVersion = "fake-1",
            AvailabilityZone = _options.AvailabilityZone,
            AgentVersion = typeof(FakeHypervisor).Assembly.GetName().Version?.ToString() ?? "0",
        };
        info.Inventories.Add(Inventory("VCPU", _options.Vcpus, 16.0));
        info.Inventories.Add(Inventory("MEMORY_MB", _options.MemoryMb, 1.0));
        info.Inventories.Add(Inventory("DISK_GB", _options.DiskGb, 1.0));
        return Task.FromResult(info);
    }

    private static Inventory Inventory(string resourceClass, long total, double ratio) => new()
    {
        ResourceClass = resourceClass,
        Total = total,
        AllocationRatio = ratio,
        MinUnit = 1,
        MaxUnit = total,
        StepSize = 1,
    };

    public Task<IReadOnlyList<Vm>> ListVmsAsync(CancellationToken cancellationToken)
        => Task.FromResult<IReadOnlyList<Vm>>([.. _vms.Values.Select(v => v.Snapshot(_options.CpuLoad, _time))]);

    public async Task<Vm> CreateVmAsync(VmSpec spec, CancellationToken cancellationToken)
    {
        VmSpecValidator.Validate(spec);
        var vm = new FakeVm(spec.Clone(), _time.GetUtcNow());
        var existing = _vms.GetOrAdd(spec.VmId, vm);
        if (!ReferenceEquals(existing, vm))
        {
            if (!existing.Spec.Shape.Equals(spec.Shape) || existing.Spec.Image != spec.Image)
            {
                throw new HypervisorException(HypervisorError.AlreadyExists, $"VM {spec.VmId} exists with a different spec.");
            }
            return existing.Snapshot(_options.CpuLoad, _time);
        }
        await Delay(_options.CreateLatency, cancellationToken).ConfigureAwait(false);
        SetState(vm, VmState.Stopped, "created");
        return spec.Start ? await StartVmAsync(spec.VmId, paused: false, cancellationToken).ConfigureAwait(false) : vm.Snapshot(_options.CpuLoad, _time);
    }

    public async Task<Vm> StartVmAsync(string vmId, bool paused, CancellationToken cancellationToken)
    {
        var vm = Get(vmId);
        if (vm.State is VmState.Running && paused)
        {
            throw new HypervisorException(HypervisorError.FailedPrecondition, $"VM {vmId} is running: only a stopped VM can be started paused.");
        }
        if (vm.State is VmState.Running || (vm.State is VmState.Paused && paused))
        {
            return vm.Snapshot(_options.CpuLoad, _time);
        }
        await Delay(_options.PowerLatency, cancellationToken).ConfigureAwait(false);
        SetState(vm, paused ? VmState.Paused : VmState.Running, paused ? "started paused" : "started");
        return vm.Snapshot(_options.CpuLoad, _time);
    }

    public async Task<Vm> StopVmAsync(string vmId, bool force, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var vm = Get(vmId);
        if (vm.State is VmState.Stopped)
        {
            return vm.Snapshot(_options.CpuLoad, _time);
        }
        if (!force)
        {
            await Delay(_options.PowerLatency, cancellationToken).ConfigureAwait(false);
        }
        SetState(vm, VmState.Stopped, force ? "forced off" : "powered down");
        return vm.Snapshot(_options.CpuLoad, _time);
    }

    public async Task<Vm> RebootVmAsync(string vmId, CancellationToken cancellationToken)
    {
        var vm = Get(vmId);
        RequireState(vm, VmState.Running, "reboot");
        await Delay(_options.PowerLatency, cancellationToken).ConfigureAwait(false);
        SetState(vm, VmState.Running, "rebooted");
        return vm.Snapshot(_options.CpuLoad, _time);
    }

    public Task DeleteVmAsync(string vmId, CancellationToken cancellationToken)
    {
        if (_vms.TryRemove(vmId, out var vm))
        {
            SetState(vm, VmState.Deleted, "deleted");
        }
        return Task.CompletedTask;
    }

    public Task<Vm> ResizeVmAsync(string vmId, VmShape shape, bool allowCold, CancellationToken cancellationToken)
    {
        var vm = Get(vmId);
        VmSpecValidator.ValidateShape(shape);
        var current = vm.Spec.Shape;
        var shrinks = shape.Vcpus < current.Vcpus || shape.MemoryMb < current.MemoryMb;
        if (vm.State is VmState.Running && shrinks && !allowCold)
        {
            throw new HypervisorException(HypervisorError.FailedPrecondition, "Shrinking vCPUs or memory cannot be done live; allow a cold resize.");
        }
        if (shape.DiskGb < current.DiskGb)
        {
            throw new HypervisorException(HypervisorError.FailedPrecondition, "A disk cannot shrink.");
        }
        vm.Spec.Shape = shape.Clone();
        return Task.FromResult(vm.Snapshot(_options.CpuLoad, _time));
    }

    public Task<Snapshot> CreateSnapshotAsync(string vmId, string snapshotId, string name, CancellationToken cancellationToken)
    {
        var vm = Get(vmId);
        var snapshot = new Snapshot
        {
            SnapshotId = snapshotId,
            VmId = vmId,
            Name = name,
            IncludesMemory = vm.State is VmState.Running,
            SizeBytes = vm.Spec.Shape.DiskGb * 1024 * 1024,
            CreatedAt = Timestamp.FromDateTimeOffset(_time.GetUtcNow()),
        };
        vm.Snapshots[snapshotId] = snapshot;
        return Task.FromResult(snapshot);
    }

    public Task<IReadOnlyList<Snapshot>> ListSnapshotsAsync(string vmId, CancellationToken cancellationToken)
        => Task.FromResult<IReadOnlyList<Snapshot>>([.. Get(vmId).Snapshots.Values]);

    public Task<Vm> RestoreSnapshotAsync(string vmId, string snapshotId, CancellationToken cancellationToken)
    {
        var vm = Get(vmId);
        GetSnapshot(vm, snapshotId);
        return Task.FromResult(vm.Snapshot(_options.CpuLoad, _time));
    }

    public Task DeleteSnapshotAsync(string vmId, string snapshotId, CancellationToken cancellationToken)
    {
        Get(vmId).Snapshots.TryRemove(snapshotId, out _);
        return Task.CompletedTask;
    }

    public Task<ExportSnapshotResponse> ExportSnapshotAsync(string vmId, string snapshotId, string imageId, CancellationToken cancellationToken)
    {
        var snapshot = GetSnapshot(Get(vmId), snapshotId);
        return Task.FromResult(new ExportSnapshotResponse { ImageId = imageId, SizeBytes = snapshot.SizeBytes, Sha256 = new string('0', 64) });
    }

    public Task<PrepareMigrationResponse> PrepareMigrationAsync(VmSpec spec, string migrationId, MemoryLayout? memoryLayout, string peerNode, CancellationToken cancellationToken)
    {
        VmSpecValidator.Validate(spec);
        VmSpecValidator.ValidatePeerNode(peerNode);
        VmSpecValidator.ValidateMemoryLayout(spec, memoryLayout);
        var vm = _vms.GetOrAdd(spec.VmId, _ => new FakeVm(spec.Clone(), _time.GetUtcNow()));
        if (vm.State is not (VmState.Incoming or VmState.Creating))
        {
            throw new HypervisorException(HypervisorError.AlreadyExists, $"VM {spec.VmId} is on this node already ({vm.State}).");
        }
        SetState(vm, VmState.Incoming, $"awaiting migration {migrationId}");
        // The destination holds the VM's snapshots before the stream starts, and says which.
        if (Source(spec.VmId) is { } source)
        {
            foreach (var (id, snapshot) in source.Snapshots)
            {
                vm.Snapshots[id] = snapshot.Clone();
            }
        }
        var uri = MigrationUri(migrationId);
        FakeMigrationFabric.Await(uri, state =>
        {
            lock (vm)
            {
                if (vm.State is not VmState.Incoming || !_vms.ContainsKey(spec.VmId))
                {
                    return false;
                }
                SetState(vm, state, $"arrived by migration {migrationId}");
                return true;
            }
        });
        return Task.FromResult(new PrepareMigrationResponse { MigrationUri = uri, SnapshotIds = { vm.Snapshots.Keys.Order(StringComparer.Ordinal) } });
    }

    /// <summary>The VM on another fake node of this process that is not itself awaiting a migration, or null.</summary>
    private FakeVm? Source(string vmId)
    {
        foreach (var (peer, _) in Peers)
        {
            if (!ReferenceEquals(peer, this) && peer._vms.TryGetValue(vmId, out var vm) && vm.State is not (VmState.Incoming or VmState.Creating))
            {
                return vm;
            }
        }
        return null;
    }

    private string MigrationUri(string migrationId) => $"fake:{_nodeName}:{migrationId}";

    public async IAsyncEnumerable<MigrationProgress> MigrateAsync(MigrateRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidatePeerNode(request.PeerNode);
        var vm = Get(request.VmId);
        if (vm.State is not VmState.Paused)
        {
            RequireState(vm, VmState.Running, "migrate");
        }
        vm.StateBeforeMigration = vm.State;
        var total = vm.Spec.Shape.MemoryMb * 1024 * 1024;
        SetState(vm, VmState.Migrating, $"migration {request.MigrationId}");
        for (var step = 1; step <= 4; step++)
        {
            await Delay(_options.PowerLatency, cancellationToken).ConfigureAwait(false);
            yield return new MigrationProgress { Phase = MigrationProgress.Types.Phase.Memory, TotalBytes = total, TransferredBytes = total * step / 4, RemainingBytes = total - (total * step / 4) };
        }
        if (!FakeMigrationFabric.HandOver(request.MigrationUri, vm.StateBeforeMigration))
        {
            SetState(vm, vm.StateBeforeMigration, $"migration {request.MigrationId} failed");
            yield return new MigrationProgress { Phase = MigrationProgress.Types.Phase.Failed, Error = $"No destination awaits {request.MigrationUri}: fake nodes migrate between agents of one process." };
            yield break;
        }
        _vms.TryRemove(vm.Spec.VmId, out _);
        SetState(vm, VmState.Deleted, $"migrated away by {request.MigrationId}");
        yield return new MigrationProgress { Phase = MigrationProgress.Types.Phase.Completed, TotalBytes = total, TransferredBytes = total };
    }

    public Task AbortMigrationAsync(string vmId, string migrationId, CancellationToken cancellationToken)
    {
        if (_vms.TryGetValue(vmId, out var vm))
        {
            if (vm.State is VmState.Incoming)
            {
                FakeMigrationFabric.Forget(MigrationUri(migrationId));
                _vms.TryRemove(vmId, out _);
                SetState(vm, VmState.Deleted, $"migration {migrationId} aborted");
            }
            else if (vm.State is VmState.Migrating)
            {
                SetState(vm, vm.StateBeforeMigration, $"migration {migrationId} aborted");
            }
        }
        return Task.CompletedTask;
    }

    public IAsyncEnumerable<VmEvent> WatchEventsAsync(CancellationToken cancellationToken) => _events.WatchAsync(cancellationToken);

    /// <summary>No guest prints anything here: two synthetic lines that say which VM and node answered.</summary>
    public Task<ConsoleOutput> GetConsoleOutputAsync(string vmId, int maxBytes, CancellationToken cancellationToken)
    {
        var vm = Get(vmId);
        var text = FormattableString.Invariant($"fake console of VM {vmId} ({vm.Spec.Name}) on node {_nodeName}\nstate {vm.State} since {vm.StateSince:O}\n");
        return Task.FromResult(ConsoleLogs.Tail(System.Text.Encoding.UTF8.GetBytes(text), maxBytes));
    }

    private FakeVm Get(string vmId)
        => _vms.TryGetValue(vmId, out var vm) ? vm : throw new HypervisorException(HypervisorError.NotFound, $"VM {vmId} is not on this node.");

    private static Snapshot GetSnapshot(FakeVm vm, string snapshotId)
        => vm.Snapshots.TryGetValue(snapshotId, out var s) ? s : throw new HypervisorException(HypervisorError.NotFound, $"Snapshot {snapshotId} of VM {vm.Spec.VmId} does not exist.");

    private static void RequireState(FakeVm vm, VmState state, string verb)
    {
        if (vm.State != state)
        {
            throw new HypervisorException(HypervisorError.FailedPrecondition, $"Cannot {verb} VM {vm.Spec.VmId} in state {vm.State}.");
        }
    }

    private void SetState(FakeVm vm, VmState state, string reason)
    {
        vm.State = state;
        vm.StateSince = _time.GetUtcNow();
        _events.Publish(new VmEvent { VmId = vm.Spec.VmId, State = state, Reason = reason, At = Timestamp.FromDateTimeOffset(vm.StateSince) });
    }

    private Task Delay(TimeSpan latency, CancellationToken cancellationToken)
        => latency <= TimeSpan.Zero ? Task.CompletedTask : Task.Delay(latency, _time, cancellationToken);

    private sealed class FakeVm(VmSpec spec, DateTimeOffset createdAt)
    {
        public VmSpec Spec { get; } = spec;
        public VmState State { get; set; } = VmState.Creating;
        public DateTimeOffset StateSince { get; set; } = createdAt;
        public VmState StateBeforeMigration { get; set; } = VmState.Running;
        public ConcurrentDictionary<string, Snapshot> Snapshots { get; } = new(StringComparer.Ordinal);

        public Vm Snapshot(double cpuLoad, TimeProvider time) => new()
        {
            VmId = Spec.VmId,
            Name = Spec.Name,
            State = State,
            Shape = Spec.Shape.Clone(),
            StateSince = Timestamp.FromDateTimeOffset(StateSince),
            SnapshotIds = { Snapshots.Keys.Order(StringComparer.Ordinal) },
            Usage = State is VmState.Running
                ? new VmUsage { CpuUtilization = cpuLoad * Spec.Shape.Vcpus, MemoryUsedMb = Spec.Shape.MemoryMb / 2, SampledAt = Timestamp.FromDateTimeOffset(time.GetUtcNow()) }
                : null,
        };
    }
}
