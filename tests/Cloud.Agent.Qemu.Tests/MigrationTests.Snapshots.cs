using System.Security.Cryptography;
using Cloud.Agent.Hypervisor;
using Cloud.Agent.Qemu.Tests.Support;
using Cloud.Contracts.Agent.V1;
using Cloud.Testing;
using Grpc.Core;
using Phase = Cloud.Contracts.Agent.V1.MigrationProgress.Types.Phase;

namespace Cloud.Agent.Qemu.Tests;

/// <summary>
/// A VM's snapshots move with it: the destination pulls every snapshot from the source and checks
/// each file before the stream starts, the source keeps its own until the VM runs elsewhere, and a
/// move that fails at any point leaves the source whole.
/// </summary>
public sealed partial class MigrationTests
{
    [Fact]
    public async Task Migrate_RunningLinuxGuestWithAMemorySnapshot_TheSnapshotArrivesChecked_AndRestoresTheCounterThere()
    {
        await using var source = await AgentServer.StartAsync("127.0.0.2");
        await using var destination = await AgentServer.StartAsync("127.0.0.3");
        var spec = await LinuxSpecAsync(source, destination, "vm-snapmove");
        await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline);
        var log = source.SerialLog("vm-snapmove");
        await SerialConsole.WaitForAsync(log, t => t.Tick >= 2, Boot);
        var before = SerialConsole.Ticks(log)[^1].Tick;
        var taken = await source.Client.CreateSnapshotAsync(new CreateSnapshotRequest { VmId = "vm-snapmove", SnapshotId = "snap-mem", Name = "before" }, Deadline);
        var after = SerialConsole.Ticks(log)[^1].Tick;
        Assert.True(taken.IncludesMemory);
        Assert.Equal(["disk.qcow2", "memory.state"], taken.Files.Select(f => f.Name).Order());
        Assert.Equal(["snap-mem"], (await ListAsync(source)).Single().SnapshotIds);

        var prepared = await destination.Client.PrepareMigrationAsync(
            new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-snap", SnapshotSource = source.Url, SnapshotGrant = TestTrust.Shared.SnapshotGrant(destination.NodeName, source.NodeName, spec.VmId) }, Deadline);
        Assert.Equal(["snap-mem"], prepared.SnapshotIds);
        // Byte for byte what the source listed (a blank disk has no base to repoint).
        var arrived = Assert.Single((await destination.Client.ListSnapshotsAsync(new VmRef { VmId = "vm-snapmove" }, Deadline)).Snapshots);
        Assert.Equal(taken.Files, arrived.Files);
        Assert.Equal(Sha256(Path.Combine(source.VmDirectory("vm-snapmove"), "snapshots", "snap-mem", "memory.state")),
            Sha256(Path.Combine(destination.VmDirectory("vm-snapmove"), "snapshots", "snap-mem", "memory.state")));

        var progress = await MigrateAsync(source, new MigrateRequest { VmId = "vm-snapmove", MigrationId = "mig-snap", MigrationUri = prepared.MigrationUri, DiskUri = prepared.DiskUri });
        Assert.True(progress[^1].Phase == Phase.Completed, $"the migration ended {progress[^1].Phase}: {progress[^1].Error}");
        var moved = await ArrivedAsync(destination, "vm-snapmove");
        Assert.Equal(["snap-mem"], moved.SnapshotIds);
        Assert.False(Directory.Exists(source.VmDirectory("vm-snapmove")));

        // On its new node the guest counts on past the snapshot, then goes back to it.
        var there = destination.SerialLog("vm-snapmove");
        var ranOn = await SerialConsole.WaitForAsync(there, t => t.Tick >= after + 6, Boot);
        var offset = SerialConsole.Length(there);
        var restored = await destination.Client.RestoreSnapshotAsync(new SnapshotRef { VmId = "vm-snapmove", SnapshotId = "snap-mem" }, Deadline);
        Assert.Equal(VmState.Running, restored.State);
        var first = await SerialConsole.WaitForAsync(there, t => t.Tick <= after + 2, Boot, offset);
        Assert.InRange(first.Tick, before, after + 2);
        Assert.True(first.Tick < ranOn.Tick - 3, $"the counter went on at {first.Tick} after {ranOn.Tick}");
        await SerialConsole.WaitForAsync(there, t => t.Tick == first.Tick + 1, Boot, offset);
    }

    /// <summary>
    /// A stopped VM moves started paused; its memory snapshot comes along, and once it runs on its
    /// new node the snapshot brings the guest back to where it was when the snapshot was taken.
    /// </summary>
    [Fact]
    public async Task Migrate_StoppedVmWithAMemorySnapshot_ArrivesWithIt_AndStartedThere_RestoresTheCounter()
    {
        await using var source = await AgentServer.StartAsync("127.0.0.2");
        await using var destination = await AgentServer.StartAsync("127.0.0.3");
        var spec = await LinuxSpecAsync(source, destination, "vm-coldsnap");
        await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline);
        var log = source.SerialLog("vm-coldsnap");
        await SerialConsole.WaitForAsync(log, t => t.Tick >= 3, Boot);
        await source.Client.CreateSnapshotAsync(new CreateSnapshotRequest { VmId = "vm-coldsnap", SnapshotId = "snap-warm", Name = "warm" }, Deadline);
        var atSnapshot = SerialConsole.Ticks(log)[^1].Tick;
        await source.Client.StopVmAsync(new StopVmRequest { VmId = "vm-coldsnap", Force = true }, Deadline);
        await source.Client.StartVmAsync(new StartVmRequest { VmId = "vm-coldsnap", Paused = true }, Deadline);

        var prepared = await destination.Client.PrepareMigrationAsync(
            new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-cold-snap", SnapshotSource = source.Url, SnapshotGrant = TestTrust.Shared.SnapshotGrant(destination.NodeName, source.NodeName, spec.VmId) }, Deadline);
        Assert.Equal(["snap-warm"], prepared.SnapshotIds);
        var progress = await MigrateAsync(source, new MigrateRequest { VmId = "vm-coldsnap", MigrationId = "mig-cold-snap", MigrationUri = prepared.MigrationUri, DiskUri = prepared.DiskUri });
        Assert.True(progress[^1].Phase == Phase.Completed, $"the migration ended {progress[^1].Phase}: {progress[^1].Error}");
        var arrived = Assert.Single(await Eventually.GetAsync(() => ListAsync(destination), v => v.Count == 1 && v[0].State != VmState.Incoming, Boot, "vm-coldsnap to arrive"));
        Assert.Equal(VmState.Paused, arrived.State);
        Assert.Empty(await ListAsync(source));

        // Powered off where it landed, then started: a fresh boot, counting from the start.
        await destination.Client.StopVmAsync(new StopVmRequest { VmId = "vm-coldsnap", Force = true }, Deadline);
        await destination.Client.StartVmAsync(new StartVmRequest { VmId = "vm-coldsnap" }, Deadline);
        var there = destination.SerialLog("vm-coldsnap");
        // Counted past the snapshot, so that a tick the fresh guest prints before it is stopped
        // cannot be taken for the restored guest's.
        await SerialConsole.WaitForAsync(there, t => t.Tick >= atSnapshot + 6, Boot);
        var offset = SerialConsole.Length(there);
        await destination.Client.RestoreSnapshotAsync(new SnapshotRef { VmId = "vm-coldsnap", SnapshotId = "snap-warm" }, Deadline);
        var first = await SerialConsole.WaitForAsync(there, t => t.Tick <= atSnapshot + 2, Boot, offset);
        Assert.InRange(first.Tick, atSnapshot - 3, atSnapshot + 2);
    }

    /// <summary>
    /// A snapshot damaged on the source (same size, one byte changed) is refused by the destination,
    /// which then keeps nothing; repaired, it arrives pointed at the destination's own copy of the
    /// base image, and restores the disk as it was.
    /// </summary>
    [Fact]
    public async Task PrepareMigration_SnapshotDamagedOnTheWay_IsRefused_DestinationKeepsNothing_ThenAHealthyOneRestoresTheDiskThere()
    {
        await using var source = await AgentServer.StartAsync("127.0.0.2");
        await using var destination = await AgentServer.StartAsync("127.0.0.3");
        var baseFile = Path.Combine(source.Root, "base.qcow2");
        Directory.CreateDirectory(source.Root);
        await new QemuImg("qemu-img").CreateBlankAsync(baseFile, 64L << 20, CancellationToken.None);
        await QemuIo.RunAsync(baseFile, "write -P 0x11 0 64k");
        foreach (var agent in new[] { source, destination })
        {
            await agent.Hypervisor.Images.ImportAsync("base", baseFile, Sha256(baseFile), CancellationToken.None);
        }
        var spec = Guests.Firmware("vm-based", start: false);
        spec.Image = "base";
        await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline);
        var disk = Path.Combine(source.VmDirectory("vm-based"), "disk.qcow2");
        await QemuIo.RunAsync(disk, "write -P 0x22 1M 64k");
        var taken = await source.Client.CreateSnapshotAsync(new CreateSnapshotRequest { VmId = "vm-based", SnapshotId = "snap-disk", Name = "disk" }, Deadline);
        Assert.False(taken.IncludesMemory);
        Assert.Equal("base", taken.BaseImage);
        await QemuIo.RunAsync(disk, "write -P 0x33 1M 64k");
        await source.Client.StartVmAsync(new StartVmRequest { VmId = "vm-based", Paused = true }, Deadline);

        var snapshotDisk = Path.Combine(source.VmDirectory("vm-based"), "snapshots", "snap-disk", "disk.qcow2");
        var healthy = await File.ReadAllBytesAsync(snapshotDisk);
        var damaged = (byte[])healthy.Clone();
        damaged[^1] ^= 0xff;
        await File.WriteAllBytesAsync(snapshotDisk, damaged);
        var refused = await Assert.ThrowsAsync<RpcException>(() => destination.Client.PrepareMigrationAsync(
            new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-damaged", SnapshotSource = source.Url, SnapshotGrant = TestTrust.Shared.SnapshotGrant(destination.NodeName, source.NodeName, spec.VmId) }, Deadline).ResponseAsync);
        Assert.Contains("arrived damaged", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Empty(await ListAsync(destination));
        Assert.False(Directory.Exists(destination.VmDirectory("vm-based")));
        Assert.Equal(VmState.Paused, Assert.Single(await ListAsync(source)).State);

        await File.WriteAllBytesAsync(snapshotDisk, healthy);
        var bad = await Assert.ThrowsAsync<RpcException>(() => destination.Client.PrepareMigrationAsync(
            new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-bad-source", SnapshotSource = "http://agent-1:7070" }, Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
        var prepared = await destination.Client.PrepareMigrationAsync(
            new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-healthy", SnapshotSource = source.Url, SnapshotGrant = TestTrust.Shared.SnapshotGrant(destination.NodeName, source.NodeName, spec.VmId) }, Deadline);
        Assert.Equal(["snap-disk"], prepared.SnapshotIds);
        var progress = await MigrateAsync(source, new MigrateRequest { VmId = "vm-based", MigrationId = "mig-healthy", MigrationUri = prepared.MigrationUri, DiskUri = prepared.DiskUri });
        Assert.True(progress[^1].Phase == Phase.Completed, $"the migration ended {progress[^1].Phase}: {progress[^1].Error}");
        await Eventually.GetAsync(() => ListAsync(destination), v => v.Count == 1 && v[0].State == VmState.Paused, Boot, "vm-based to arrive paused");

        var arrivedDisk = Path.Combine(destination.VmDirectory("vm-based"), "snapshots", "snap-disk", "disk.qcow2");
        var info = await new QemuImg("qemu-img").InfoAsync(arrivedDisk, "qcow2", forceShare: true, CancellationToken.None);
        Assert.StartsWith(destination.DataDirectory, info.BackingFile, StringComparison.Ordinal);
        await destination.Client.StopVmAsync(new StopVmRequest { VmId = "vm-based", Force = true }, Deadline);
        var movedDisk = Path.Combine(destination.VmDirectory("vm-based"), "disk.qcow2");
        await QemuIo.RunAsync(movedDisk, "read -P 0x33 1M 64k");
        await destination.Client.RestoreSnapshotAsync(new SnapshotRef { VmId = "vm-based", SnapshotId = "snap-disk" }, Deadline);
        await QemuIo.RunAsync(movedDisk, "read -P 0x22 1M 64k");
        await QemuIo.RunAsync(movedDisk, "read -P 0x11 0 64k");
    }

    /// <summary>The destination's QEMU dies mid-stream, after the snapshots were copied: the source keeps the VM and every snapshot, and each restores.</summary>
    [Fact]
    public async Task Migrate_DestinationDiesMidMove_SourceKeepsTheVmAndEverySnapshot_AndEachRestores()
    {
        await using var source = await AgentServer.StartAsync("127.0.0.2");
        await using var destination = await AgentServer.StartAsync("127.0.0.3");
        var spec = Guests.Firmware("vm-keep", memoryMb: 256);
        var created = await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline);
        foreach (var id in new[] { "snap-a", "snap-b" })
        {
            await source.Client.CreateSnapshotAsync(new CreateSnapshotRequest { VmId = "vm-keep", SnapshotId = id, Name = id }, Deadline);
        }
        var listed = (await source.Client.ListSnapshotsAsync(new VmRef { VmId = "vm-keep" }, Deadline)).Snapshots;
        var prepared = await destination.Client.PrepareMigrationAsync(
            new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-die", SnapshotSource = source.Url, SnapshotGrant = TestTrust.Shared.SnapshotGrant(destination.NodeName, source.NodeName, spec.VmId) }, Deadline);
        Assert.Equal(["snap-a", "snap-b"], prepared.SnapshotIds.Order());
        var incomingPid = (await ListAsync(destination)).Single().Pid;
        using var call = source.Client.Migrate(new MigrateRequest
        {
            VmId = "vm-keep",
            MigrationId = "mig-die",
            MigrationUri = prepared.MigrationUri,
            DiskUri = prepared.DiskUri,
            MaxBandwidthBytesPerSecond = SlowBandwidth,
        }, Deadline);
        var (moving, phases) = await KillDestinationMidStreamAsync(call, incomingPid);

        Assert.True(moving, "the migration never reached its memory phase");
        Assert.Equal(Phase.Failed, phases[^1].Phase);
        var kept = Assert.Single(await ListAsync(source));
        Assert.Equal(VmState.Running, kept.State);
        Assert.Equal(["snap-a", "snap-b"], kept.SnapshotIds.Order());
        Assert.Equal(listed, (await source.Client.ListSnapshotsAsync(new VmRef { VmId = "vm-keep" }, Deadline)).Snapshots);
        await Eventually.GetAsync(() => ListAsync(destination), vms => vms.Count == 0, Boot, "the destination to drop the failed incoming VM");
        Assert.False(Directory.Exists(destination.VmDirectory("vm-keep")));
        var pid = created.Pid;
        foreach (var id in new[] { "snap-a", "snap-b" })
        {
            var restored = await source.Client.RestoreSnapshotAsync(new SnapshotRef { VmId = "vm-keep", SnapshotId = id }, Deadline);
            Assert.Equal(VmState.Running, restored.State);
            Assert.NotEqual(pid, restored.Pid);
            Assert.Equal("running", await QueryStatusAsync(source, "vm-keep"));
            pid = restored.Pid;
        }
    }

    /// <summary>
    /// The controller powers a VM moved while stopped off as soon as it arrived, and may abort the
    /// migration late (its landing failed): the arrived VM and its snapshots stay, whichever of the
    /// stop and the agent's own closing of the migration came first.
    /// </summary>
    [Fact]
    public async Task AbortMigration_AfterTheVmArrivedAndWasStopped_KeepsTheVmAndItsSnapshots()
    {
        await using var source = await AgentServer.StartAsync("127.0.0.2");
        await using var destination = await AgentServer.StartAsync("127.0.0.3");
        var spec = Guests.Firmware("vm-landed", start: false);
        await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline);
        await source.Client.CreateSnapshotAsync(new CreateSnapshotRequest { VmId = "vm-landed", SnapshotId = "kept", Name = "kept" }, Deadline);
        await source.Client.StartVmAsync(new StartVmRequest { VmId = "vm-landed", Paused = true }, Deadline);
        var prepared = await destination.Client.PrepareMigrationAsync(
            new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-landed", SnapshotSource = source.Url, SnapshotGrant = TestTrust.Shared.SnapshotGrant(destination.NodeName, source.NodeName, spec.VmId) }, Deadline);
        var progress = await MigrateAsync(source, new MigrateRequest { VmId = "vm-landed", MigrationId = "mig-landed", MigrationUri = prepared.MigrationUri, DiskUri = prepared.DiskUri });
        Assert.True(progress[^1].Phase == Phase.Completed, $"the migration ended {progress[^1].Phase}: {progress[^1].Error}");
        await Eventually.GetAsync(() => ListAsync(destination), v => v.Count == 1 && v[0].State != VmState.Incoming, Boot, "vm-landed to arrive");

        await destination.Client.StopVmAsync(new StopVmRequest { VmId = "vm-landed", Force = true }, Deadline);
        await Eventually.TrueAsync(() => !File.Exists(Path.Combine(destination.VmDirectory("vm-landed"), "migration.json")), Boot, "the destination to forget the migration");
        await destination.Client.AbortMigrationAsync(new AbortMigrationRequest { VmId = "vm-landed", MigrationId = "mig-landed" }, Deadline);

        var kept = Assert.Single(await ListAsync(destination));
        Assert.Equal(VmState.Stopped, kept.State);
        Assert.Equal(["kept"], kept.SnapshotIds);
        Assert.Equal(VmState.Stopped, (await destination.Client.RestoreSnapshotAsync(new SnapshotRef { VmId = "vm-landed", SnapshotId = "kept" }, Deadline)).State);
    }

    /// <summary>The boundary between nodes: only a snapshot's own files are served, and a manifest that does not describe a snapshot is refused, leaving nothing.</summary>
    [Fact]
    public async Task SnapshotFiles_RefuseWhatIsNotASnapshotsFile_AndManifestsThatDoNotDescribeOne()
    {
        await using var agent = await AgentServer.StartAsync("127.0.0.2");
        await agent.Client.CreateVmAsync(new CreateVmRequest { Spec = Guests.Firmware("vm-files", start: false) }, Deadline);
        var taken = await agent.Client.CreateSnapshotAsync(new CreateSnapshotRequest { VmId = "vm-files", SnapshotId = "s1", Name = "s1" }, Deadline);

        var disk = new MemoryStream();
        using (var call = agent.Client.ReadSnapshotFile(new ReadSnapshotFileRequest { VmId = "vm-files", SnapshotId = "s1", Name = "disk.qcow2" }, Deadline))
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                call.ResponseStream.Current.Data.WriteTo(disk);
            }
        }
        Assert.Equal(taken.Files.Single().Sha256, Convert.ToHexStringLower(SHA256.HashData(disk.ToArray())));
        foreach (var (request, code) in new[]
        {
            (new ReadSnapshotFileRequest { VmId = "vm-files", SnapshotId = "s1", Name = "snapshot.json" }, StatusCode.NotFound),
            (new ReadSnapshotFileRequest { VmId = "vm-files", SnapshotId = "s1", Name = "../vm.json" }, StatusCode.NotFound),
            (new ReadSnapshotFileRequest { VmId = "vm-files", SnapshotId = "s1", Name = "memory.state" }, StatusCode.NotFound),
            (new ReadSnapshotFileRequest { VmId = "vm-files", SnapshotId = "s2", Name = "disk.qcow2" }, StatusCode.NotFound),
            (new ReadSnapshotFileRequest { VmId = "vm-other", SnapshotId = "s1", Name = "disk.qcow2" }, StatusCode.NotFound),
            (new ReadSnapshotFileRequest { VmId = "vm-files", SnapshotId = "../s1", Name = "disk.qcow2" }, StatusCode.InvalidArgument),
        })
        {
            using var call = agent.Client.ReadSnapshotFile(request, Deadline);
            var refused = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
            Assert.True(refused.StatusCode == code, $"{request}: {refused.Status}");
        }
        using (var image = agent.Client.ReadImage(new ReadStoredImageRequest { ImageId = "no-such-image" }, Deadline))
        {
            Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => image.ResponseStream.MoveNext(CancellationToken.None))).StatusCode);
        }
        var pull = await Assert.ThrowsAsync<RpcException>(() => agent.Client.PullImageAsync(
            new PullImageRequest { ImageId = "img", Format = "qcow2", Sha256 = new string('a', 64), SizeBytes = 1, SourceNode = "http://agent-2.example:7070" }, Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, pull.StatusCode);

        var bytes = disk.ToArray();
        var good = taken.Clone();
        good.SnapshotId = "s-in";
        foreach (var (manifest, error) in new (Action<Snapshot>, HypervisorError)[]
        {
            (m => m.Files.Add(new SnapshotFile { Name = "vm.json", SizeBytes = 1, Sha256 = new string('a', 64) }), HypervisorError.InvalidArgument),
            (m => m.IncludesMemory = true, HypervisorError.InvalidArgument),
            (m => m.Files[0].Sha256 = "not-a-hash", HypervisorError.InvalidArgument),
            (m => m.BaseImage = "absent", HypervisorError.FailedPrecondition),
            (m => m.Files[0].SizeBytes = 10, HypervisorError.Internal),
            (m => m.Files[0].Sha256 = new string('0', 64), HypervisorError.Internal),
        })
        {
            var bad = good.Clone();
            manifest(bad);
            var refused = await Assert.ThrowsAsync<HypervisorException>(() => agent.Hypervisor.ImportSnapshotAsync("vm-files", bad, (_, _) => Chunks(bytes), CancellationToken.None));
            Assert.True(refused.Error == error, $"{bad}: {refused.Error} {refused.Message}");
        }
        Assert.Equal(["s1"], (await agent.Client.ListSnapshotsAsync(new VmRef { VmId = "vm-files" }, Deadline)).Snapshots.Select(s => s.SnapshotId));
        Assert.Equal(["s1"], Directory.GetDirectories(Path.Combine(agent.VmDirectory("vm-files"), "snapshots")).Select(Path.GetFileName));

        var arrived = await agent.Hypervisor.ImportSnapshotAsync("vm-files", good, (_, _) => Chunks(bytes), CancellationToken.None);
        Assert.Equal(taken.Files, arrived.Files);
        Assert.Equal(["s-in", "s1"], (await ListAsync(agent)).Single().SnapshotIds.Order(StringComparer.Ordinal));
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> Chunks(byte[] bytes)
    {
        await Task.Yield();
        for (var offset = 0; offset < bytes.Length; offset += 4096)
        {
            yield return bytes.AsMemory(offset, Math.Min(4096, bytes.Length - offset));
        }
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
