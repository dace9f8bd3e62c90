using Cloud.Agent.Hypervisor;
using Cloud.Agent.Qemu.Tests.Support;
using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu.Tests;

[Collection(QemuCollection.Name)]
public sealed class ResizeTests
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);

    /// <summary>One boot of the Linux guest proves vCPU hotplug, memory hotplug, the balloon and the refusals.</summary>
    [Fact]
    public async Task ResizeVm_RunningLinuxGuest_HotplugsCpuAndMemory_BalloonsDown_AndRefusesWhatNeedsARestart()
    {
        await using var node = new TestNode();
        var image = await Guests.ImportLinuxAsync(node);
        var vm = await node.Hypervisor.CreateVmAsync(Guests.Linux("vm-grow", image, vcpus: 1, memoryMb: 256, maxVcpus: 2, maxMemoryMb: 512), CancellationToken.None);
        var log = node.SerialLog("vm-grow");
        var booted = await SerialConsole.WaitForAsync(log, t => t.Cpus == 1 && t.MemTotalKb > 0, Boot);

        // Refused live, and nothing changes: the bounds are fixed while QEMU runs.
        var refused = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.ResizeVmAsync("vm-grow",
            new VmShape { Vcpus = 1, MemoryMb = 256, DiskGb = 1, MaxVcpus = 4, MaxMemoryMb = 512 }, allowCold: false, CancellationToken.None));
        Assert.Equal(HypervisorError.FailedPrecondition, refused.Error);
        Assert.Contains("max_vcpus is fixed at 2", refused.Message, StringComparison.Ordinal);
        Assert.Contains("Allow a cold resize", refused.Message, StringComparison.Ordinal);

        // Live: one vCPU and a 256 MiB DIMM more, in the same QEMU.
        var grown = await node.Hypervisor.ResizeVmAsync("vm-grow",
            new VmShape { Vcpus = 2, MemoryMb = 512, DiskGb = 1 }, allowCold: false, CancellationToken.None);
        Assert.Equal(vm.Pid, grown.Pid);
        Assert.Equal(2, grown.Shape.Vcpus);
        Assert.Equal(512, grown.Shape.MemoryMb);
        var offset = SerialConsole.Length(log);
        var hotplugged = await SerialConsole.WaitForAsync(log, t => t.Cpus == 2 && t.MemTotalKb >= booted.MemTotalKb + 250 * 1024, Boot, offset);
        Assert.True(hotplugged.MemTotalKb <= booted.MemTotalKb + 260 * 1024, $"the guest sees {hotplugged.MemTotalKb} kB");

        // The balloon takes 128 MiB back from the guest without a restart.
        var ballooned = await node.Hypervisor.ResizeVmAsync("vm-grow",
            new VmShape { Vcpus = 2, MemoryMb = 384, DiskGb = 1 }, allowCold: false, CancellationToken.None);
        Assert.Equal(vm.Pid, ballooned.Pid);
        Assert.Equal(384, ballooned.Shape.MemoryMb);
        offset = SerialConsole.Length(log);
        var squeezed = await SerialConsole.WaitForAsync(log, t => t.MemTotalKb <= hotplugged.MemTotalKb - 120 * 1024, Boot, offset);
        Assert.True(squeezed.MemTotalKb >= hotplugged.MemTotalKb - 136 * 1024, $"the guest sees {squeezed.MemTotalKb} kB");
        Assert.Equal(2, squeezed.Cpus);

        // vCPUs never go away from a running guest.
        var shrink = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.ResizeVmAsync("vm-grow",
            new VmShape { Vcpus = 1, MemoryMb = 384, DiskGb = 1 }, allowCold: false, CancellationToken.None));
        Assert.Equal(HypervisorError.FailedPrecondition, shrink.Error);
        Assert.Contains("vCPUs cannot be removed", shrink.Message, StringComparison.Ordinal);
        var after = await node.GetVmAsync("vm-grow");
        Assert.Equal(VmState.Running, after.State);
        Assert.Equal(vm.Pid, after.Pid);
        Assert.Equal(2, after.Shape.Vcpus);
        Assert.Equal(384, after.Shape.MemoryMb);
    }

    [Fact]
    public async Task ResizeVm_ColdAllowed_RestartsQemuWithTheNewShape()
    {
        await using var node = new TestNode();
        var vm = await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-cold", vcpus: 1, memoryMb: 128), CancellationToken.None);
        var shape = new VmShape { Vcpus = 2, MemoryMb = 192, DiskGb = 2, MaxVcpus = 3 };

        var refused = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.ResizeVmAsync("vm-cold", shape, allowCold: false, CancellationToken.None));
        Assert.Equal(HypervisorError.FailedPrecondition, refused.Error);
        Assert.Equal(vm.Pid, (await node.GetVmAsync("vm-cold")).Pid);

        var resized = await node.Hypervisor.ResizeVmAsync("vm-cold", shape, allowCold: true, CancellationToken.None);

        Assert.Equal(VmState.Running, resized.State);
        Assert.NotEqual(vm.Pid, resized.Pid);
        Assert.Equal(2, resized.Shape.Vcpus);
        Assert.Equal(3, resized.Shape.MaxVcpus);
        var cmdline = HostCommandLine(resized.Pid);
        Assert.Contains("cpus=2,maxcpus=3", cmdline);
        Assert.Contains("size=192M", cmdline);
        var disk = await new QemuImg("qemu-img").InfoAsync(Path.Combine(node.VmDirectory("vm-cold"), "disk.qcow2"), "qcow2", forceShare: true, CancellationToken.None);
        Assert.Equal(2L << 30, disk.VirtualSize);
        Assert.False(File.Exists($"/proc/{vm.Pid}/cmdline") && File.ReadAllText($"/proc/{vm.Pid}/cmdline").Contains("vm-cold", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ResizeVm_Stopped_AppliesAtTheNextStart_AndBadShapesChangeNothing()
    {
        await using var node = new TestNode();
        await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-off", start: false, diskGb: 2), CancellationToken.None);

        var shrinkDisk = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.ResizeVmAsync("vm-off",
            new VmShape { Vcpus = 1, MemoryMb = 128, DiskGb = 1 }, allowCold: true, CancellationToken.None));
        var zeroCpus = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.ResizeVmAsync("vm-off",
            new VmShape { Vcpus = 0, MemoryMb = 128, DiskGb = 2 }, allowCold: true, CancellationToken.None));
        var resized = await node.Hypervisor.ResizeVmAsync("vm-off", new VmShape { Vcpus = 2, MemoryMb = 160, DiskGb = 2 }, allowCold: false, CancellationToken.None);
        var started = await node.Hypervisor.StartVmAsync("vm-off", paused: false, CancellationToken.None);

        Assert.Equal(HypervisorError.FailedPrecondition, shrinkDisk.Error);
        Assert.Equal(HypervisorError.InvalidArgument, zeroCpus.Error);
        Assert.Equal(VmState.Stopped, resized.State);
        Assert.Contains("size=160M", HostCommandLine(started.Pid));
        Assert.Contains("cpus=2", HostCommandLine(started.Pid));
    }

    private static List<string> HostCommandLine(int pid)
        => [.. File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries)];
}
