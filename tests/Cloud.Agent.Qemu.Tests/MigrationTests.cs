using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Cloud.Agent.Qemu.Tests.Support;
using Cloud.Contracts.Agent.V1;
using Grpc.Core;
using Phase = Cloud.Contracts.Agent.V1.MigrationProgress.Types.Phase;

namespace Cloud.Agent.Qemu.Tests;

/// <summary>
/// Live migration between two real agents on different loopback addresses, driven over their gRPC
/// services the way the controller drives them: PrepareMigration on the destination, Migrate on
/// the source, AbortMigration on both when it is called off.
/// </summary>
[Collection(QemuCollection.Name)]
public sealed partial class MigrationTests
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);

    private const long SlowBandwidth = 1L << 20;
    private const int SlowDowntimeMs = 250;

    private static CallOptions Deadline => new(deadline: DateTime.UtcNow.AddMinutes(3));

    [Fact]
    public async Task Migrate_RunningLinuxGuestWithLocalDiskAndHotAddedMemory_KeepsCountingOnTheDestination()
    {
        await using var source = await AgentServer.StartAsync("127.0.0.2");
        await using var destination = await AgentServer.StartAsync("127.0.0.3");
        var spec = await LinuxSpecAsync(source, destination, "vm-move");
        spec.Shape.MaxMemoryMb = 512;
        var created = await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline);
        var booted = await SerialConsole.WaitForAsync(source.SerialLog("vm-move"), t => t.Tick >= 3 && t.MemTotalKb > 0, Boot);

        // 128 MiB more, as a DIMM plugged into the running guest, which onlines it.
        var grown = await source.Client.ResizeVmAsync(new ResizeVmRequest { VmId = "vm-move", Shape = new VmShape { Vcpus = 1, MemoryMb = 384, DiskGb = 1 } }, Deadline);
        var hotplugged = await SerialConsole.WaitForAsync(source.SerialLog("vm-move"), t => t.MemTotalKb >= booted.MemTotalKb + 120 * 1024, Boot);
        var layout = (await ListAsync(source)).Single().MemoryLayout;
        Assert.Equal(256, layout.BootMemoryMb);
        var dimm = Assert.Single(layout.Dimms);
        Assert.Equal(128, dimm.SizeMb);

        // The controller sends the VM's current spec and the source's memory layout.
        spec.Shape = grown.Shape;
        var prepared = await destination.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-1", MemoryLayout = layout }, Deadline);
        Assert.StartsWith("tcp:127.0.0.3:", prepared.MigrationUri, StringComparison.Ordinal);
        Assert.StartsWith("nbd://127.0.0.3:", prepared.DiskUri, StringComparison.Ordinal);
        Assert.Equal(VmState.Incoming, (await ListAsync(destination)).Single().State);
        var lastBefore = SerialConsole.Ticks(source.SerialLog("vm-move"))[^1].Tick;
        var progress = await MigrateAsync(source, new MigrateRequest
        {
            VmId = "vm-move",
            MigrationId = "mig-1",
            MigrationUri = prepared.MigrationUri,
            DiskUri = prepared.DiskUri,
            DowntimeLimitMs = 300,
            MaxBandwidthBytesPerSecond = 1L << 30,
        });

        Assert.True(progress[^1].Phase == Phase.Completed, $"the migration ended {progress[^1].Phase}: {progress[^1].Error}");
        Assert.Contains(progress, p => p.Phase == Phase.DiskMirror && p.TotalBytes > 0);
        Assert.Contains(progress, p => p.Phase == Phase.Memory && p.TransferredBytes > 0 && p.TotalBytes > 0);
        Assert.True(progress[^1].TransferredBytes > 0);
        // QEMU's own account of the switch-over: the guest paused for a part of the whole.
        Assert.True(progress[^1].TotalTimeMs > 0, $"total time {progress[^1].TotalTimeMs} ms");
        Assert.InRange(progress[^1].DowntimeMs, 0, progress[^1].TotalTimeMs);
        var moved = await ArrivedAsync(destination, "vm-move");
        Assert.NotEqual(created.Pid, moved.Pid);
        Assert.Empty(await ListAsync(source));
        Assert.False(Directory.Exists(source.VmDirectory("vm-move")));
        Assert.False(IsQemuOf(created.Pid, "vm-move"));

        // The guest goes on where it was: its counter continues on the destination's console.
        var firstThere = await SerialConsole.WaitForAsync(destination.SerialLog("vm-move"), _ => true, Boot);
        Assert.True(firstThere.Tick >= lastBefore, $"tick {firstThere.Tick} on the destination after {lastBefore} on the source: the guest started over");
        // ... with the memory it had there, the hot-added DIMM included.
        Assert.True(firstThere.MemTotalKb >= booted.MemTotalKb + 120 * 1024, $"the guest sees {firstThere.MemTotalKb} kB on the destination, {hotplugged.MemTotalKb} kB on the source");
        Assert.Equal(layout, moved.MemoryLayout);
        var later = await SerialConsole.WaitForAsync(destination.SerialLog("vm-move"), t => t.Tick >= firstThere.Tick + 3, Boot);

        // The local disk came along: every write the guest made on the source is on the destination's disk.
        await destination.Client.StopVmAsync(new StopVmRequest { VmId = "vm-move", Force = true }, Deadline);
        var sector = await FirstSectorAsync(Path.Combine(destination.VmDirectory("vm-move"), "disk.qcow2"));
        var onDisk = long.Parse(sector.Split("tick=")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        // The guest writes the sector just after printing the tick, so the last write may still be in flight.
        Assert.True(onDisk >= later.Tick - 1, $"the disk says tick {onDisk}, the console {later.Tick}");
    }

    /// <summary>
    /// How a stopped VM moves (a resize that leaves its node): started paused, so the guest runs no
    /// instruction on either node, yet its disk travels; a failed try leaves it paused where it was.
    /// </summary>
    [Fact]
    public async Task Migrate_StoppedVmStartedPaused_ArrivesPausedWithItsDisk_AndTheGuestNeverRan()
    {
        await using var source = await AgentServer.StartAsync("127.0.0.2");
        await using var destination = await AgentServer.StartAsync("127.0.0.3");
        var spec = await LinuxSpecAsync(source, destination, "vm-cold");
        spec.Start = false;
        await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline);
        var sourceDisk = Path.Combine(source.VmDirectory("vm-cold"), "disk.qcow2");
        Assert.Contains("wrote 65536/65536 bytes", await QemuIo.RunAsync(sourceDisk, "write -P 0x5a 1M 64k"), StringComparison.Ordinal);

        var started = await source.Client.StartVmAsync(new StartVmRequest { VmId = "vm-cold", Paused = true }, Deadline);
        Assert.Equal(VmState.Paused, started.State);
        Assert.Equal("prelaunch", await QueryStatusAsync(source, "vm-cold"));
        Assert.Equal(started.Pid, (await source.Client.StartVmAsync(new StartVmRequest { VmId = "vm-cold", Paused = true }, Deadline)).Pid);

        // A first try whose destination died before the stream began: the source stays paused.
        var doomed = await destination.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-doomed" }, Deadline);
        Process.GetProcessById((await ListAsync(destination)).Single().Pid).Kill();
        var failed = await MigrateAsync(source, new MigrateRequest { VmId = "vm-cold", MigrationId = "mig-doomed", MigrationUri = doomed.MigrationUri, DiskUri = doomed.DiskUri });
        Assert.Equal(Phase.Failed, failed[^1].Phase);
        var kept = Assert.Single(await ListAsync(source));
        Assert.Equal(VmState.Paused, kept.State);
        Assert.Equal(started.Pid, kept.Pid);
        Assert.Equal("prelaunch", await QueryStatusAsync(source, "vm-cold"));
        await Eventually.GetAsync(() => ListAsync(destination), vms => vms.Count == 0, Boot, "the destination to drop the failed incoming VM");

        var prepared = await destination.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-cold" }, Deadline);
        var progress = await MigrateAsync(source, new MigrateRequest { VmId = "vm-cold", MigrationId = "mig-cold", MigrationUri = prepared.MigrationUri, DiskUri = prepared.DiskUri });

        Assert.True(progress[^1].Phase == Phase.Completed, $"the migration ended {progress[^1].Phase}: {progress[^1].Error}");
        var arrived = Assert.Single(await Eventually.GetAsync(() => ListAsync(destination), v => v.Count == 1 && v[0].State != VmState.Incoming, Boot, "vm-cold to arrive"));
        Assert.Equal(VmState.Paused, arrived.State);
        Assert.Equal("prelaunch", await QueryStatusAsync(destination, "vm-cold"));
        Assert.Empty(await ListAsync(source));
        // Neither QEMU ran the guest: its console is empty on the destination, as it was on the source.
        Assert.Equal(0, new FileInfo(destination.SerialLog("vm-cold")).Length);
        // The migration's disk export is closed once the guest is there, as after a running arrival.
        await Eventually.TrueAsync(() => !File.Exists(Path.Combine(destination.VmDirectory("vm-cold"), "migration.json")), Boot, "the destination to finish the arrival");

        await destination.Client.StopVmAsync(new StopVmRequest { VmId = "vm-cold", Force = true }, Deadline);
        var destinationDisk = Path.Combine(destination.VmDirectory("vm-cold"), "disk.qcow2");
        Assert.Contains("read 65536/65536 bytes", await QemuIo.RunAsync(destinationDisk, "read -P 0x5a 1M 64k"), StringComparison.Ordinal);
        // Started for real on its new node, it boots.
        Assert.Equal(VmState.Running, (await destination.Client.StartVmAsync(new StartVmRequest { VmId = "vm-cold" }, Deadline)).State);
        await SerialConsole.WaitForAsync(destination.SerialLog("vm-cold"), t => t.Tick >= 1, Boot);
    }

    [Fact]
    public async Task AbortMigration_Midway_CleansUpTheDestination_AndTheSourceRunsOn_LimitsReachedQemu()
    {
        await using var source = await AgentServer.StartAsync("127.0.0.2");
        await using var destination = await AgentServer.StartAsync("127.0.0.3");
        var spec = Guests.Firmware("vm-stay", memoryMb: 256);
        var (created, incomingPid, call) = await StartSlowMigrationAsync(source, destination, spec, "mig-abort");
        using var _ = call;
        var phases = new List<MigrationProgress>();
        Assert.True(await ReadUntilMemoryMovesAsync(call, phases), "the migration never reached its memory phase");
        Assert.Equal(VmState.Migrating, (await ListAsync(source)).Single().State);
        // The request's limits and the agent's capabilities are what the source's QEMU migrates with.
        var parameters = await QemuAsync(source, "vm-stay", "query-migrate-parameters");
        Assert.Equal(SlowBandwidth, parameters.GetProperty("max-bandwidth").GetInt64());
        Assert.Equal(SlowDowntimeMs, parameters.GetProperty("downtime-limit").GetInt64());
        var capabilities = (await QemuAsync(source, "vm-stay", "query-migrate-capabilities")).EnumerateArray()
            .ToDictionary(c => c.GetProperty("capability").GetString()!, c => c.GetProperty("state").GetBoolean());
        Assert.True(capabilities["auto-converge"]);
        Assert.True(capabilities["events"]);
        await source.Client.AbortMigrationAsync(new AbortMigrationRequest { VmId = "vm-stay", MigrationId = "mig-abort" }, Deadline);
        await destination.Client.AbortMigrationAsync(new AbortMigrationRequest { VmId = "vm-stay", MigrationId = "mig-abort" }, Deadline);
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            phases.Add(call.ResponseStream.Current);
        }

        Assert.Equal(Phase.Cancelled, phases[^1].Phase);
        var kept = Assert.Single(await ListAsync(source));
        Assert.Equal(VmState.Running, kept.State);
        Assert.Equal(created.Pid, kept.Pid);
        Assert.Equal("running", await QueryStatusAsync(source, "vm-stay"));
        Assert.Empty(await ListAsync(destination));
        Assert.False(Directory.Exists(destination.VmDirectory("vm-stay")));
        await Eventually.TrueAsync(() => !IsQemuOf(incomingPid, "vm-stay"), Boot, "the destination's QEMU to be gone");

        // The same VM can be migrated again afterwards.
        var retry = await destination.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-again" }, Deadline);
        var done = await MigrateAsync(source, new MigrateRequest { VmId = "vm-stay", MigrationId = "mig-again", MigrationUri = retry.MigrationUri, DiskUri = retry.DiskUri });
        Assert.Equal(Phase.Completed, done[^1].Phase);
        await ArrivedAsync(destination, "vm-stay");
    }

    [Fact]
    public async Task Migrate_DestinationQemuDies_FailsWithAnError_DestinationForgetsIt_SourceRunsOn()
    {
        await using var source = await AgentServer.StartAsync("127.0.0.2");
        await using var destination = await AgentServer.StartAsync("127.0.0.3");
        var spec = Guests.Firmware("vm-survive", memoryMb: 256);
        var (created, incomingPid, call) = await StartSlowMigrationAsync(source, destination, spec, "mig-fail");
        using var _ = call;
        var (killed, phases) = await KillDestinationMidStreamAsync(call, incomingPid);

        Assert.True(killed, "the migration never reached its memory phase");
        Assert.Equal(Phase.Failed, phases[^1].Phase);
        Assert.NotEmpty(phases[^1].Error);
        var kept = Assert.Single(await ListAsync(source));
        Assert.Equal(VmState.Running, kept.State);
        Assert.Equal(created.Pid, kept.Pid);
        Assert.Equal("running", await QueryStatusAsync(source, "vm-survive"));
        await Eventually.GetAsync(() => ListAsync(destination), vms => vms.Count == 0, Boot, "the destination to drop the failed incoming VM");
        Assert.False(Directory.Exists(destination.VmDirectory("vm-survive")));
    }

    [Fact]
    public async Task Migrate_AfterVcpuAndMemoryHotplug_ArrivesWithTheSameVcpusAndDimms()
    {
        await using var source = await AgentServer.StartAsync("127.0.0.2");
        await using var destination = await AgentServer.StartAsync("127.0.0.3");
        var spec = Guests.Firmware("vm-cpus", vcpus: 1, maxVcpus: 2, memoryMb: 128, maxMemoryMb: 512);
        await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline);
        var grown = await source.Client.ResizeVmAsync(new ResizeVmRequest { VmId = "vm-cpus", Shape = new VmShape { Vcpus = 2, MemoryMb = 128, DiskGb = 1 } }, Deadline);
        Assert.Equal(2, grown.Shape.Vcpus);

        // The controller sends the VM's current spec to the destination.
        spec.Shape = grown.Shape;
        var prepared = await destination.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-cpus" }, Deadline);
        var progress = await MigrateAsync(source, new MigrateRequest { VmId = "vm-cpus", MigrationId = "mig-cpus", MigrationUri = prepared.MigrationUri, DiskUri = prepared.DiskUri });

        Assert.Equal(Phase.Completed, progress[^1].Phase);
        var moved = await ArrivedAsync(destination, "vm-cpus");
        Assert.Equal(2, moved.Shape.Vcpus);
        Assert.Equal("running", await QueryStatusAsync(destination, "vm-cpus"));

        // Two DIMMs added live there, then back to the first node with the memory layout they make.
        await destination.Client.ResizeVmAsync(new ResizeVmRequest { VmId = "vm-cpus", Shape = new VmShape { Vcpus = 2, MemoryMb = 256, DiskGb = 1 } }, Deadline);
        var twice = await destination.Client.ResizeVmAsync(new ResizeVmRequest { VmId = "vm-cpus", Shape = new VmShape { Vcpus = 2, MemoryMb = 320, DiskGb = 1 } }, Deadline);
        var layout = (await ListAsync(destination)).Single().MemoryLayout;
        Assert.Equal(128, layout.BootMemoryMb);
        Assert.Equal(new[] { ("dimm0", 128L), ("dimm1", 64L) }, layout.Dimms.Select(d => (d.Id, d.SizeMb)).ToArray());
        spec.Shape = twice.Shape;

        // Prepared without the layout, the first node boots plain RAM: QEMU fails the stream, the
        // error names the cause, and the guest runs on where it was.
        var blind = await source.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-blind" }, Deadline);
        var failed = await MigrateAsync(destination, new MigrateRequest { VmId = "vm-cpus", MigrationId = "mig-blind", MigrationUri = blind.MigrationUri, DiskUri = blind.DiskUri });
        Assert.Equal(Phase.Failed, failed[^1].Phase);
        Assert.Contains("memory_layout", failed[^1].Error, StringComparison.Ordinal);
        Assert.Equal(VmState.Running, (await ListAsync(destination)).Single().State);
        await Eventually.GetAsync(() => ListAsync(source), vms => vms.Count == 0, Boot, "the first node to drop the failed incoming VM");

        var back = await source.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-back", MemoryLayout = layout }, Deadline);
        Assert.Equal(DimmsOf(await QemuAsync(destination, "vm-cpus", "query-memory-devices")), DimmsOf(await QemuAsync(source, "vm-cpus", "query-memory-devices")));
        var returned = await MigrateAsync(destination, new MigrateRequest { VmId = "vm-cpus", MigrationId = "mig-back", MigrationUri = back.MigrationUri, DiskUri = back.DiskUri });

        Assert.True(returned[^1].Phase == Phase.Completed, $"the migration ended {returned[^1].Phase}: {returned[^1].Error}");
        var home = await ArrivedAsync(source, "vm-cpus");
        Assert.Equal("running", await QueryStatusAsync(source, "vm-cpus"));
        Assert.Equal(layout, home.MemoryLayout);
        Assert.Equal(new[] { ("dimm0", 128L << 20), ("dimm1", 64L << 20) }, DimmsOf(await QemuAsync(source, "vm-cpus", "query-memory-devices")).ToArray());
        var summary = await QemuAsync(source, "vm-cpus", "query-memory-size-summary");
        Assert.Equal(128L << 20, summary.GetProperty("base-memory").GetInt64());
        Assert.Equal(192L << 20, summary.GetProperty("plugged-memory").GetInt64());
    }

    [Fact]
    public async Task Migrate_BadRequests_AreRefusedAndChangeNothing()
    {
        await using var source = await AgentServer.StartAsync("127.0.0.2");
        var created = await source.Client.CreateVmAsync(new CreateVmRequest { Spec = Guests.Firmware("vm-fixed") }, Deadline);

        var badUri = await MigrateErrorAsync(source, new MigrateRequest { VmId = "vm-fixed", MigrationId = "m", MigrationUri = "exec:sh -c reboot", DiskUri = "nbd://127.0.0.3:1/disk0" });
        var hostName = await MigrateErrorAsync(source, new MigrateRequest { VmId = "vm-fixed", MigrationId = "m", MigrationUri = "tcp:example.com:4444", DiskUri = "nbd://127.0.0.3:1/disk0" });
        var noDisk = await MigrateErrorAsync(source, new MigrateRequest { VmId = "vm-fixed", MigrationId = "m", MigrationUri = "tcp:127.0.0.3:4444" });
        var badId = await MigrateErrorAsync(source, new MigrateRequest { VmId = "../vm-fixed", MigrationId = "m", MigrationUri = "tcp:127.0.0.3:4444" });
        var prepareEscape = await Assert.ThrowsAsync<RpcException>(async () => await source.Client.PrepareMigrationAsync(
            new PrepareMigrationRequest { Spec = Guests.Firmware("vm-other"), MigrationId = "../../x" }, Deadline));

        Assert.Equal(StatusCode.InvalidArgument, badUri.StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, hostName.StatusCode);
        Assert.Equal(StatusCode.FailedPrecondition, noDisk.StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, badId.StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, prepareEscape.StatusCode);
        var growable = Guests.Firmware("vm-other", memoryMb: 128, maxMemoryMb: 256);
        foreach (var bad in new[]
        {
            new MemoryLayout { BootMemoryMb = 0 },
            new MemoryLayout { BootMemoryMb = 128, Dimms = { new MemoryDimm { Id = "dimm0", SizeMb = 256 } } },
            new MemoryLayout { BootMemoryMb = 128, Dimms = { new MemoryDimm { Id = "dimm0", SizeMb = 32 }, new MemoryDimm { Id = "dimm0", SizeMb = 32 } } },
            new MemoryLayout { BootMemoryMb = 128, Dimms = { new MemoryDimm { Id = "x,id=evil", SizeMb = 32 } } },
            new MemoryLayout { BootMemoryMb = 128, Dimms = { new MemoryDimm { Id = "dimm0", SizeMb = 0 } } },
        })
        {
            var refused = await Assert.ThrowsAsync<RpcException>(async () => await source.Client.PrepareMigrationAsync(
                new PrepareMigrationRequest { Spec = growable, MigrationId = "m", MemoryLayout = bad }, Deadline));
            Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
            Assert.Contains("memory_layout", refused.Status.Detail, StringComparison.Ordinal);
        }
        Assert.False(Directory.Exists(source.VmDirectory("vm-other")));
        var vm = Assert.Single(await ListAsync(source));
        Assert.Equal(VmState.Running, vm.State);
        Assert.Equal(created.Pid, vm.Pid);
    }

    private static async Task<VmSpec> LinuxSpecAsync(AgentServer source, AgentServer destination, string vmId)
    {
        var (kernel, initrd) = await LinuxGuest.EnsureAsync();
        foreach (var agent in new[] { source, destination })
        {
            await agent.Hypervisor.Images.ImportKernelAsync("linux", kernel, initrd, LinuxGuest.Append, CancellationToken.None);
        }
        return new VmSpec { VmId = vmId, Name = vmId, Image = "linux", Start = true, Shape = new VmShape { Vcpus = 1, MemoryMb = 256, DiskGb = 1 } };
    }

    /// <summary>
    /// Creates the VM on the source, prepares the destination and starts a migration throttled to
    /// 1 MiB/s: 256 MiB of RAM would take minutes, so it is surely still running when the test acts.
    /// </summary>
    private static async Task<(Vm Created, int IncomingPid, AsyncServerStreamingCall<MigrationProgress> Call)> StartSlowMigrationAsync(
        AgentServer source, AgentServer destination, VmSpec spec, string migrationId)
    {
        var created = await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline);
        var prepared = await destination.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = migrationId }, Deadline);
        var incomingPid = (await ListAsync(destination)).Single().Pid;
        var call = source.Client.Migrate(new MigrateRequest
        {
            VmId = spec.VmId,
            MigrationId = migrationId,
            MigrationUri = prepared.MigrationUri,
            DiskUri = prepared.DiskUri,
            MaxBandwidthBytesPerSecond = SlowBandwidth,
            DowntimeLimitMs = SlowDowntimeMs,
        }, Deadline);
        return (created, incomingPid, call);
    }

    /// <summary>Kills the destination's QEMU once RAM is moving, and reads the progress to its end; false if the stream ended first.</summary>
    private static async Task<(bool Killed, List<MigrationProgress> Phases)> KillDestinationMidStreamAsync(AsyncServerStreamingCall<MigrationProgress> call, int incomingPid)
    {
        var phases = new List<MigrationProgress>();
        var killed = await ReadUntilMemoryMovesAsync(call, phases);
        if (killed)
        {
            Process.GetProcessById(incomingPid).Kill();
        }
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            phases.Add(call.ResponseStream.Current);
        }
        return (killed, phases);
    }

    /// <summary>Reads progress into <paramref name="phases"/> until RAM is moving; false if the stream ended first.</summary>
    private static async Task<bool> ReadUntilMemoryMovesAsync(AsyncServerStreamingCall<MigrationProgress> call, List<MigrationProgress> phases)
    {
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            phases.Add(call.ResponseStream.Current);
            if (call.ResponseStream.Current.Phase == Phase.Memory && call.ResponseStream.Current.TransferredBytes > 0)
            {
                return true;
            }
        }
        return false;
    }

    private static async Task<List<MigrationProgress>> MigrateAsync(AgentServer source, MigrateRequest request)
    {
        using var call = source.Client.Migrate(request, Deadline);
        var progress = new List<MigrationProgress>();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            progress.Add(call.ResponseStream.Current);
        }
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        return progress;
    }

    private static async Task<Status> MigrateErrorAsync(AgentServer source, MigrateRequest request)
    {
        using var call = source.Client.Migrate(request, Deadline);
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        });
        return error.Status;
    }

    /// <summary>
    /// The source reports completion once it has sent the last of the guest; the destination
    /// resumes it a moment later, on QEMU's own RESUME event.
    /// </summary>
    private static async Task<Vm> ArrivedAsync(AgentServer destination, string vmId)
    {
        // Done either way once it runs or is gone (a destination that failed to load drops it).
        var vms = await Eventually.GetAsync(() => ListAsync(destination), v => v.Count != 1 || v[0].State != VmState.Incoming, Boot, $"{vmId} to run on the destination");
        Assert.Single(vms);
        Assert.Equal(vmId, vms[0].VmId);
        Assert.Equal(VmState.Running, vms[0].State);
        return vms[0];
    }

    private static async Task<IReadOnlyList<Vm>> ListAsync(AgentServer agent)
        => (await agent.Client.ListVmsAsync(new ListVmsRequest(), Deadline)).Vms;

    /// <summary>What QEMU itself says, through the backend's own monitor connection.</summary>
    private static Task<string> QueryStatusAsync(AgentServer agent, string vmId) => agent.Hypervisor.QueryRunStatusAsync(vmId, CancellationToken.None);

    private static async Task<JsonElement> QemuAsync(AgentServer agent, string vmId, string command)
        => await agent.Hypervisor.QueryQemuAsync(vmId, command, CancellationToken.None) ?? throw new InvalidOperationException($"no QEMU runs {vmId}");

    /// <summary>Id and size of each pc-dimm QEMU holds, in its order.</summary>
    private static List<(string Id, long Size)> DimmsOf(JsonElement devices)
        => devices.EnumerateArray()
            .Where(d => d.GetProperty("type").GetString() == "dimm")
            .Select(d => d.GetProperty("data"))
            .Select(d => (d.GetProperty("id").GetString()!, d.GetProperty("size").GetInt64()))
            .ToList();

    private static bool IsQemuOf(int pid, string vmId)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Contains(vmId, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static async Task<string> FirstSectorAsync(string qcow2)
    {
        var raw = qcow2 + ".sector";
        var info = new ProcessStartInfo("qemu-img") { RedirectStandardError = true };
        foreach (var arg in new[] { "dd", "-f", "qcow2", "-O", "raw", "bs=512", "count=1", "if=" + qcow2, "of=" + raw })
        {
            info.ArgumentList.Add(arg);
        }
        using var process = Process.Start(info)!;
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, "qemu-img dd failed: " + stderr);
        var text = Encoding.ASCII.GetString(await File.ReadAllBytesAsync(raw));
        Assert.Contains("cloud-disk tick=", text, StringComparison.Ordinal);
        return text;
    }
}
