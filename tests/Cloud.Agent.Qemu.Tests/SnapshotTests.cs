using Cloud.Agent.Hypervisor;
using Cloud.Agent.Qemu.Tests.Support;
using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu.Tests;

[Collection(QemuCollection.Name)]
public sealed class SnapshotTests
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);

    /// <summary>One boot of the Linux guest: snapshot with RAM, list, restore (the counter goes back), export, delete.</summary>
    [Fact]
    public async Task Snapshot_RunningLinuxGuest_RestoreTurnsTheCounterBack_ExportAndDeleteWork()
    {
        await using var node = new TestNode();
        var image = await Guests.ImportLinuxAsync(node);
        var vm = await node.Hypervisor.CreateVmAsync(Guests.Linux("vm-snap", image), CancellationToken.None);
        var log = node.SerialLog("vm-snap");
        await SerialConsole.WaitForAsync(log, t => t.Tick >= 2, Boot);

        var beforeSnapshot = SerialConsole.Ticks(log)[^1].Tick;
        var snapshot = await node.Hypervisor.CreateSnapshotAsync("vm-snap", "snap-1", "before the change", CancellationToken.None);
        var afterSnapshot = SerialConsole.Ticks(log)[^1].Tick;
        Assert.True(snapshot.IncludesMemory);
        Assert.True(snapshot.SizeBytes > 0);
        Assert.Equal(VmState.Running, (await node.GetVmAsync("vm-snap")).State);

        var again = await node.Hypervisor.CreateSnapshotAsync("vm-snap", "snap-1", "before the change", CancellationToken.None);
        var clash = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.CreateSnapshotAsync("vm-snap", "snap-1", "another name", CancellationToken.None));
        Assert.Equal(snapshot.CreatedAt, again.CreatedAt);
        Assert.Equal(HypervisorError.AlreadyExists, clash.Error);

        var ranOn = await SerialConsole.WaitForAsync(log, t => t.Tick >= afterSnapshot + 6, Boot);
        var listed = Assert.Single(await node.Hypervisor.ListSnapshotsAsync("vm-snap", CancellationToken.None));
        Assert.Equal("snap-1", listed.SnapshotId);
        Assert.Equal("before the change", listed.Name);
        Assert.True(listed.IncludesMemory);

        var offset = SerialConsole.Length(log);
        var restored = await node.Hypervisor.RestoreSnapshotAsync("vm-snap", "snap-1", CancellationToken.None);

        Assert.Equal(VmState.Running, restored.State);
        // A new QEMU loaded the saved memory state.
        Assert.NotEqual(vm.Pid, restored.Pid);
        // The guest may print one more tick between reading the offset and the restore pausing it;
        // after that, the counter starts again from where the snapshot was taken.
        var first = await SerialConsole.WaitForAsync(log, t => t.Tick <= afterSnapshot + 2, Boot, offset);
        Assert.InRange(first.Tick, beforeSnapshot, afterSnapshot + 2);
        Assert.True(first.Tick < ranOn.Tick - 3, $"the counter went on at {first.Tick} after {ranOn.Tick}");
        var next = await SerialConsole.WaitForAsync(log, t => t.Tick == first.Tick + 1, Boot, offset);
        Assert.True(SerialConsole.Ticks(log, offset).TakeWhile(t => t != next).Count(t => t.Tick > afterSnapshot + 2) <= 1, "the guest went on counting after the restore");

        var exported = await node.Hypervisor.ExportSnapshotAsync("vm-snap", "snap-1", "img-snap-1", CancellationToken.None);
        Assert.Equal("img-snap-1", exported.ImageId);
        Assert.Matches("^[0-9a-f]{64}$", exported.Sha256);
        Assert.True(exported.SizeBytes > 0);
        Assert.Equal(ImageKind.Disk, node.Hypervisor.Images.Find("img-snap-1")?.Kind);

        await node.Hypervisor.DeleteSnapshotAsync("vm-snap", "snap-1", CancellationToken.None);
        await node.Hypervisor.DeleteSnapshotAsync("vm-snap", "snap-1", CancellationToken.None);

        Assert.Empty(await node.Hypervisor.ListSnapshotsAsync("vm-snap", CancellationToken.None));
        var disk = await new QemuImg("qemu-img").InfoAsync(Path.Combine(node.VmDirectory("vm-snap"), "disk.qcow2"), "qcow2", forceShare: true, CancellationToken.None);
        Assert.DoesNotContain(disk.Snapshots, s => s.Name == "snap-1");
        var missing = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.RestoreSnapshotAsync("vm-snap", "snap-1", CancellationToken.None));
        Assert.Equal(HypervisorError.NotFound, missing.Error);
        Assert.Equal(VmState.Running, (await node.GetVmAsync("vm-snap")).State);
    }

    [Fact]
    public async Task Snapshot_StoppedVm_IsDiskOnly_RestoresOnlyWhenStopped_AndItsExportBootsANewVm()
    {
        await using var node = new TestNode();
        await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-cold-snap", start: false), CancellationToken.None);

        var snapshot = await node.Hypervisor.CreateSnapshotAsync("vm-cold-snap", "disk-1", "disk only", CancellationToken.None);
        Assert.False(snapshot.IncludesMemory);
        // The snapshot is a file of its own, not a part of the VM's disk.
        Assert.Equal(["disk.qcow2"], snapshot.Files.Select(f => f.Name));
        var disk = await new QemuImg("qemu-img").InfoAsync(Path.Combine(node.VmDirectory("vm-cold-snap"), "disk.qcow2"), "qcow2", forceShare: true, CancellationToken.None);
        Assert.Empty(disk.Snapshots);
        Assert.True(File.Exists(Path.Combine(node.VmDirectory("vm-cold-snap"), "snapshots", "disk-1", "disk.qcow2")));

        await node.Hypervisor.StartVmAsync("vm-cold-snap", paused: false, CancellationToken.None);
        var refused = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.RestoreSnapshotAsync("vm-cold-snap", "disk-1", CancellationToken.None));
        Assert.Equal(HypervisorError.FailedPrecondition, refused.Error);
        Assert.Contains("stop VM", refused.Message, StringComparison.Ordinal);
        Assert.Equal(VmState.Running, (await node.GetVmAsync("vm-cold-snap")).State);

        await node.Hypervisor.StopVmAsync("vm-cold-snap", force: true, TimeSpan.Zero, CancellationToken.None);
        var restored = await node.Hypervisor.RestoreSnapshotAsync("vm-cold-snap", "disk-1", CancellationToken.None);
        Assert.Equal(VmState.Stopped, restored.State);

        var exported = await node.Hypervisor.ExportSnapshotAsync("vm-cold-snap", "disk-1", "img-disk-1", CancellationToken.None);
        var clone = Guests.Firmware("vm-clone");
        clone.Image = exported.ImageId;
        var started = await node.Hypervisor.CreateVmAsync(clone, CancellationToken.None);
        Assert.Equal(VmState.Running, started.State);
        var overlay = await new QemuImg("qemu-img").InfoAsync(Path.Combine(node.VmDirectory("vm-clone"), "disk.qcow2"), "qcow2", forceShare: true, CancellationToken.None);
        Assert.Contains("img-disk-1", overlay.BackingFile, StringComparison.Ordinal);

        // The export backs the clone's disk, so it stays while the clone lives; after, it is the
        // node's to remove like a pulled image.
        Assert.True(node.Hypervisor.Images.Find("img-disk-1")!.Exported);
        var backing = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.RemoveImageAsync("img-disk-1", CancellationToken.None));
        Assert.Equal(HypervisorError.FailedPrecondition, backing.Error);
        Assert.Contains("vm-clone", backing.Message, StringComparison.Ordinal);
        Assert.Empty(await node.Hypervisor.RemoveUnusedImagesAsync(TimeSpan.Zero, CancellationToken.None));
        await node.Hypervisor.DeleteVmAsync("vm-clone", CancellationToken.None);
        Assert.Equal(["img-disk-1"], await node.Hypervisor.RemoveUnusedImagesAsync(TimeSpan.Zero, CancellationToken.None));
        Assert.Null(node.Hypervisor.Images.Find("img-disk-1"));

        await node.Hypervisor.DeleteSnapshotAsync("vm-cold-snap", "disk-1", CancellationToken.None);
        Assert.Empty(await node.Hypervisor.ListSnapshotsAsync("vm-cold-snap", CancellationToken.None));
        var missing = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.ExportSnapshotAsync("vm-cold-snap", "disk-1", "img-other", CancellationToken.None));
        Assert.Equal(HypervisorError.NotFound, missing.Error);
        Assert.Null(node.Hypervisor.Images.Find("img-other"));
    }

    /// <summary>The guest grew by a DIMM after the snapshot: restored, it is back where it was, then gets the DIMM again.</summary>
    [Fact]
    public async Task Restore_AfterTheVmGrewLive_LoadsTheSnapshot_ThenPlugsTheMemoryBackIn()
    {
        await using var node = new TestNode();
        var image = await Guests.ImportLinuxAsync(node);
        await node.Hypervisor.CreateVmAsync(Guests.Linux("vm-grow", image, maxMemoryMb: 512), CancellationToken.None);
        var log = node.SerialLog("vm-grow");
        var booted = await SerialConsole.WaitForAsync(log, t => t.Tick >= 2 && t.MemTotalKb > 0, Boot);
        await node.Hypervisor.CreateSnapshotAsync("vm-grow", "small", "small", CancellationToken.None);
        var atSnapshot = SerialConsole.Ticks(log)[^1].Tick;
        await node.Hypervisor.ResizeVmAsync("vm-grow", new VmShape { Vcpus = 1, MemoryMb = 384, DiskGb = 1 }, allowCold: false, CancellationToken.None);
        var grown = await SerialConsole.WaitForAsync(log, t => t.MemTotalKb >= booted.MemTotalKb + 120 * 1024 && t.Tick >= atSnapshot + 5, Boot);

        var offset = SerialConsole.Length(log);
        var restored = await node.Hypervisor.RestoreSnapshotAsync("vm-grow", "small", CancellationToken.None);

        Assert.Equal(VmState.Running, restored.State);
        Assert.Equal(256, restored.MemoryLayout.BootMemoryMb);
        Assert.Equal(128, Assert.Single(restored.MemoryLayout.Dimms).SizeMb);
        // The grown guest's ticks are all past atSnapshot + 5; the first one under that is the restored guest's.
        var first = await SerialConsole.WaitForAsync(log, t => t.Tick <= atSnapshot + 2, Boot, offset);
        Assert.InRange(first.Tick, atSnapshot - 3, atSnapshot + 2);
        Assert.True(first.Tick < grown.Tick, $"tick {first.Tick} after the restore, {grown.Tick} before it");
        await SerialConsole.WaitForAsync(log, t => t.MemTotalKb >= booted.MemTotalKb + 120 * 1024, Boot, offset);
    }

    /// <summary>vCPUs cannot be taken from a running guest: a memory snapshot with more of them than the VM has now is refused, and nothing changes.</summary>
    [Fact]
    public async Task Restore_SnapshotWithMoreVcpusThanTheVmHasNow_IsRefused_AndTheVmRunsOn()
    {
        await using var node = new TestNode();
        await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-shrunk", vcpus: 2), CancellationToken.None);
        await node.Hypervisor.CreateSnapshotAsync("vm-shrunk", "two", "two vCPUs", CancellationToken.None);
        var shrunk = await node.Hypervisor.ResizeVmAsync("vm-shrunk", new VmShape { Vcpus = 1, MemoryMb = 128, DiskGb = 1 }, allowCold: true, CancellationToken.None);

        var refused = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.RestoreSnapshotAsync("vm-shrunk", "two", CancellationToken.None));

        Assert.Equal(HypervisorError.FailedPrecondition, refused.Error);
        Assert.Contains("Stop the VM to restore its disk only", refused.Message, StringComparison.Ordinal);
        var vm = await node.GetVmAsync("vm-shrunk");
        Assert.Equal((VmState.Running, shrunk.Pid), (vm.State, vm.Pid));
        await node.Hypervisor.StopVmAsync("vm-shrunk", force: true, TimeSpan.Zero, CancellationToken.None);
        Assert.Equal(VmState.Stopped, (await node.Hypervisor.RestoreSnapshotAsync("vm-shrunk", "two", CancellationToken.None)).State);
    }

    /// <summary>An internal snapshot an earlier agent made is copied out into a snapshot of its own when the agent starts, and restores.</summary>
    [Fact]
    public async Task AgentStart_InternalSnapshotOfAnEarlierAgent_BecomesASnapshotOfItsOwn_ThatRestores()
    {
        await using var node = new TestNode();
        await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-earlier", start: false), CancellationToken.None);
        var disk = Path.Combine(node.VmDirectory("vm-earlier"), "disk.qcow2");
        await QemuIo.RunAsync(disk, "write -P 0x44 0 64k");
        await ProcessRunner.RunAsync("qemu-img", ["snapshot", "-c", "old-1", disk], TimeSpan.FromSeconds(30), CancellationToken.None);
        await File.WriteAllTextAsync(Path.Combine(node.VmDirectory("vm-earlier"), "snapshots", "old-1.json"),
            """{"snapshotId":"old-1","name":"kept from before","includesMemory":false,"sizeBytes":1,"createdAt":"2026-11-30T10:00:00+00:00"}""");
        await File.WriteAllTextAsync(Path.Combine(node.VmDirectory("vm-earlier"), "snapshots", "broken.json"), "{not json");
        await QemuIo.RunAsync(disk, "write -P 0x55 0 64k");

        await node.Hypervisor.DisposeAsync();
        node.Replace(node.NewInstance());
        var kept = Assert.Single(await node.Hypervisor.ListSnapshotsAsync("vm-earlier", CancellationToken.None));

        Assert.Equal(("old-1", "kept from before", false), (kept.SnapshotId, kept.Name, kept.IncludesMemory));
        Assert.Equal(["disk.qcow2"], kept.Files.Select(f => f.Name));
        Assert.False(File.Exists(Path.Combine(node.VmDirectory("vm-earlier"), "snapshots", "old-1.json")));
        await node.Hypervisor.RestoreSnapshotAsync("vm-earlier", "old-1", CancellationToken.None);
        await QemuIo.RunAsync(disk, "read -P 0x44 0 64k");
    }

    /// <summary>An agent stopped mid-restore left the VM's disk aside: on its next start the VM gets that disk back.</summary>
    [Fact]
    public async Task AgentStart_AfterARestoreCutShort_TheVmKeepsTheDiskItHad()
    {
        await using var node = new TestNode();
        await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-cut", start: false), CancellationToken.None);
        var disk = Path.Combine(node.VmDirectory("vm-cut"), "disk.qcow2");
        await QemuIo.RunAsync(disk, "write -P 0x66 0 64k");
        await node.Hypervisor.DisposeAsync();
        // What the restore had done when it stopped: the VM's disk aside, the snapshot's copy in its place.
        File.Copy(disk, disk + ".before-restore");
        await QemuIo.RunAsync(disk, "write -P 0x77 0 64k");

        node.Replace(node.NewInstance());

        Assert.Equal(VmState.Stopped, (await node.GetVmAsync("vm-cut")).State);
        Assert.False(File.Exists(disk + ".before-restore"));
        await QemuIo.RunAsync(disk, "read -P 0x66 0 64k");
    }
}
