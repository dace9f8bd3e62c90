using System.Diagnostics;
using Cloud.Agent.Hypervisor;
using Cloud.Agent.Qemu.Tests.Support;
using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu.Tests;

[Collection(QemuCollection.Name)]
public sealed class LifecycleTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task CreateVm_WithStart_RunsQemuWithItsFilesInTheVmFolder()
    {
        await using var node = new TestNode();
        await using var events = node.RecordEvents();

        var vm = await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-a"), CancellationToken.None);

        Assert.Equal(VmState.Running, vm.State);
        Assert.True(vm.Pid > 0);
        var dir = node.VmDirectory("vm-a");
        foreach (var file in new[] { "vm.json", "disk.qcow2", "qmp.sock", "qemu.pid", "serial.log" })
        {
            Assert.True(File.Exists(Path.Combine(dir, file)), file + " is missing");
        }
        Assert.Equal(vm.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(dir, "qemu.pid")).Trim());
        await events.WaitForAsync(e => e.VmId == "vm-a" && e.State == VmState.Stopped && e.Reason == "created", Wait);
        await events.WaitForAsync(e => e.VmId == "vm-a" && e.State == VmState.Running, Wait);
        var listed = await node.GetVmAsync("vm-a");
        Assert.Equal(VmState.Running, listed.State);
        Assert.NotNull(listed.Usage);
        Assert.True(listed.Usage.MemoryUsedMb > 0);
    }

    [Fact]
    public async Task CreateVm_SameSpecAgain_ReturnsTheVm_DifferentSpec_AlreadyExists()
    {
        await using var node = new TestNode();
        var spec = Guests.Firmware("vm-idem", start: false);
        await node.Hypervisor.CreateVmAsync(spec, CancellationToken.None);

        var again = await node.Hypervisor.CreateVmAsync(spec, CancellationToken.None);
        var other = Guests.Firmware("vm-idem", start: false, vcpus: 2);
        var error = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.CreateVmAsync(other, CancellationToken.None));

        Assert.Equal(VmState.Stopped, again.State);
        Assert.Equal(HypervisorError.AlreadyExists, error.Error);
    }

    [Fact]
    public async Task CreateVm_UnknownImage_FailsPreconditionAndLeavesNothing()
    {
        await using var node = new TestNode();
        var spec = Guests.Firmware("vm-noimg");
        spec.Image = "no-such-image";

        var error = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.CreateVmAsync(spec, CancellationToken.None));

        Assert.Equal(HypervisorError.FailedPrecondition, error.Error);
        Assert.False(Directory.Exists(node.VmDirectory("vm-noimg")));
        Assert.Empty(await node.Hypervisor.ListVmsAsync(CancellationToken.None));
    }

    [Fact]
    public async Task StopVm_GuestIgnoresPowerButton_IsForcedAfterTheTimeout()
    {
        await using var node = new TestNode();
        await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-stop"), CancellationToken.None);
        await using var events = node.RecordEvents();
        var timer = Stopwatch.StartNew();

        // Firmware without an OS never acts on ACPI powerdown.
        var stopped = await node.Hypervisor.StopVmAsync("vm-stop", force: false, TimeSpan.FromSeconds(1), CancellationToken.None);

        Assert.True(timer.Elapsed >= TimeSpan.FromSeconds(1), "stopped before the timeout");
        Assert.Equal(VmState.Stopped, stopped.State);
        Assert.Equal(0, stopped.Pid);
        await events.WaitForAsync(e => e.State == VmState.Stopping && e.Reason == "ACPI powerdown", Wait);
        await events.WaitForAsync(e => e.State == VmState.Stopped && e.Reason.Contains("forced off after the powerdown timeout", StringComparison.Ordinal), Wait);
        Assert.False(File.Exists(Path.Combine(node.VmDirectory("vm-stop"), "qmp.sock")));
    }

    [Fact]
    public async Task StopVm_Forced_StopsAtOnce_AndStartRunsItAgain()
    {
        await using var node = new TestNode();
        var first = await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-force"), CancellationToken.None);

        var stopped = await node.Hypervisor.StopVmAsync("vm-force", force: true, TimeSpan.FromMinutes(5), CancellationToken.None);
        var again = await node.Hypervisor.StopVmAsync("vm-force", force: true, TimeSpan.Zero, CancellationToken.None);
        var restarted = await node.Hypervisor.StartVmAsync("vm-force", paused: false, CancellationToken.None);

        Assert.Equal(VmState.Stopped, stopped.State);
        Assert.Equal(VmState.Stopped, again.State);
        Assert.False(Directory.Exists($"/proc/{first.Pid}") && File.ReadAllText($"/proc/{first.Pid}/cmdline").Contains("vm-force", StringComparison.Ordinal));
        Assert.Equal(VmState.Running, restarted.State);
        Assert.NotEqual(first.Pid, restarted.Pid);
    }

    [Fact]
    public async Task RebootVm_Running_ResetsTheGuestAndReportsIt()
    {
        await using var node = new TestNode();
        await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-reboot"), CancellationToken.None);
        await using var events = node.RecordEvents();

        var vm = await node.Hypervisor.RebootVmAsync("vm-reboot", CancellationToken.None);

        Assert.Equal(VmState.Running, vm.State);
        await events.WaitForAsync(e => e.VmId == "vm-reboot" && e.Reason == "reset", Wait);
    }

    [Fact]
    public async Task RebootVm_Stopped_FailsPrecondition()
    {
        await using var node = new TestNode();
        await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-rb2", start: false), CancellationToken.None);

        var error = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.RebootVmAsync("vm-rb2", CancellationToken.None));

        Assert.Equal(HypervisorError.FailedPrecondition, error.Error);
    }

    [Fact]
    public async Task DeleteVm_Running_KillsQemuAndRemovesEverything()
    {
        await using var node = new TestNode();
        var vm = await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-del"), CancellationToken.None);
        await using var events = node.RecordEvents();

        await node.Hypervisor.DeleteVmAsync("vm-del", CancellationToken.None);
        await node.Hypervisor.DeleteVmAsync("vm-del", CancellationToken.None);

        Assert.False(Directory.Exists(node.VmDirectory("vm-del")));
        Assert.Empty(await node.Hypervisor.ListVmsAsync(CancellationToken.None));
        Assert.False(File.Exists($"/proc/{vm.Pid}/cmdline") && File.ReadAllText($"/proc/{vm.Pid}/cmdline").Contains("vm-del", StringComparison.Ordinal));
        await events.WaitForAsync(e => e.VmId == "vm-del" && e.State == VmState.Deleted, Wait);
        var error = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.StartVmAsync("vm-del", paused: false, CancellationToken.None));
        Assert.Equal(HypervisorError.NotFound, error.Error);
    }

    [Fact]
    public async Task QemuKilled_ReportsCrashed_AndTheVmCanStartAgain()
    {
        await using var node = new TestNode();
        var vm = await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-crash"), CancellationToken.None);
        await using var events = node.RecordEvents();

        Process.GetProcessById(vm.Pid).Kill();

        var crashed = await events.WaitForAsync(e => e.VmId == "vm-crash" && e.State == VmState.Crashed, Wait);
        Assert.Contains("unexpectedly", crashed.Reason, StringComparison.Ordinal);
        var listed = await node.GetVmAsync("vm-crash");
        Assert.Equal(VmState.Crashed, listed.State);
        Assert.NotEmpty(listed.Error);
        var restarted = await node.Hypervisor.StartVmAsync("vm-crash", paused: false, CancellationToken.None);
        Assert.Equal(VmState.Running, restarted.State);
    }

    [Fact]
    public async Task LinuxGuest_PowersItselfOff_ReportsStoppedByTheGuest()
    {
        await using var node = new TestNode();
        var image = await Guests.ImportLinuxAsync(node, "linux-poweroff", "cloud.poweroff_after=2");
        await using var events = node.RecordEvents();

        await node.Hypervisor.CreateVmAsync(Guests.Linux("vm-self", image), CancellationToken.None);

        var stopped = await events.WaitForAsync(e => e.VmId == "vm-self" && e.State == VmState.Stopped && e.Reason != "created", TimeSpan.FromSeconds(120));
        Assert.Equal("guest-shutdown", stopped.Reason);
        Assert.Contains(SerialConsole.Ticks(node.SerialLog("vm-self")), t => t.Tick == 2);
        Assert.Equal(VmState.Stopped, (await node.GetVmAsync("vm-self")).State);
    }

    [Fact]
    public async Task GetNodeInfo_ReportsTcgAndInventories()
    {
        await using var node = new TestNode(configure: o => o.TotalVcpus = 8);

        var info = await node.Hypervisor.GetNodeInfoAsync(CancellationToken.None);

        Assert.Equal("qemu", info.Hypervisor);
        Assert.Equal(Accelerator.Tcg, info.Accelerator);
        Assert.StartsWith("7.", info.HypervisorVersion, StringComparison.Ordinal);
        Assert.Equal(8, info.Inventories.Single(i => i.ResourceClass == "VCPU").Total);
        Assert.True(info.Inventories.Single(i => i.ResourceClass == "MEMORY_MB").Total > 1000);
        Assert.True(info.Inventories.Single(i => i.ResourceClass == "DISK_GB").Total > 0);
        Assert.Contains("COMPUTE_ACCEL_TCG", info.Traits);
    }

    /// <summary>
    /// "auto" chooses an accelerator that runs guests on this very host: where /dev/kvm opens but
    /// KVM cannot run a vCPU (a nested hypervisor refusing its MSRs), the choice is TCG, not a VM
    /// whose QEMU aborts at start.
    /// </summary>
    [Fact]
    public async Task Auto_ChoosesAnAcceleratorThatRunsGuestsOnThisHost()
    {
        await using var node = new TestNode(configure: o => o.Accelerator = "auto");

        var vm = await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-auto"), CancellationToken.None);

        Assert.Equal(VmState.Running, vm.State);
        var accel = node.Hypervisor.Accelerator == Accelerator.Kvm ? "kvm" : "tcg";
        Assert.Contains($"accel={accel}", File.ReadAllText($"/proc/{vm.Pid}/cmdline").Replace('\0', ' '), StringComparison.Ordinal);
    }
}

[CollectionDefinition(Name)]
public sealed class QemuCollection
{
    // Guests under TCG are CPU-bound and the machine has two cores: QEMU tests run one at a time.
    public const string Name = "qemu";
}
