using System.Globalization;
using Cloud.Agent.Hypervisor;
using Cloud.Agent.Qemu.Tests.Support;
using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu.Tests;

[Collection(QemuCollection.Name)]
public sealed class AdoptionAndHardeningTests
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);

    /// <summary>One boot of the Linux guest: per-VM usage, then an agent restart that the guest never notices.</summary>
    [Fact]
    public async Task AgentRestart_ReadoptsRunningQemus_GuestsKeepRunning_AndUsageIsReported()
    {
        await using var node = new TestNode();
        var image = await Guests.ImportLinuxAsync(node);
        var linux = await node.Hypervisor.CreateVmAsync(Guests.Linux("vm-keep", image), CancellationToken.None);
        var stopped = await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-idle", start: false), CancellationToken.None);
        var log = node.SerialLog("vm-keep");
        await SerialConsole.WaitForAsync(log, t => t.Tick >= 2, Boot);

        // Usage comes from the QEMU process's threads: booting Linux under TCG keeps them busy.
        var usage = (await node.GetVmAsync("vm-keep")).Usage;
        Assert.NotNull(usage);
        Assert.InRange(usage.CpuUtilization, 0.01, Environment.ProcessorCount);
        Assert.InRange(usage.MemoryUsedMb, 16, 256 + 512);
        Assert.Null((await node.GetVmAsync("vm-idle")).Usage);

        // The agent goes away: QEMU does not.
        await node.Hypervisor.DisposeAsync();
        var duringRestart = await SerialConsole.WaitForAsync(log, t => t.Tick >= 4, Boot);
        Assert.True(File.Exists($"/proc/{linux.Pid}/cmdline"), "QEMU died with the agent");

        var restarted = node.NewInstance();
        node.Replace(restarted);
        var vms = await restarted.ListVmsAsync(CancellationToken.None);

        var keep = vms.Single(v => v.VmId == "vm-keep");
        Assert.Equal(VmState.Running, keep.State);
        Assert.Equal(linux.Pid, keep.Pid);
        Assert.Equal(VmState.Stopped, vms.Single(v => v.VmId == "vm-idle").State);
        Assert.Equal(stopped.Shape, vms.Single(v => v.VmId == "vm-idle").Shape);
        // The count never started over: every tick from boot to now is in the log, in order.
        var after = await SerialConsole.WaitForAsync(log, t => t.Tick >= duringRestart.Tick + 3, Boot);
        var ticks = SerialConsole.Ticks(log).Select(t => t.Tick).ToList();
        Assert.Equal(Enumerable.Range(0, (int)after.Tick + 1).Select(i => (long)i), ticks.Take((int)after.Tick + 1));

        // The re-adopted guest is fully managed: events flow and it can be stopped.
        await using var events = node.RecordEvents();
        var stop = await restarted.StopVmAsync("vm-keep", force: true, TimeSpan.Zero, CancellationToken.None);
        Assert.Equal(VmState.Stopped, stop.State);
        await events.WaitForAsync(e => e.VmId == "vm-keep" && e.State == VmState.Stopped, Boot);
        Assert.False(File.Exists($"/proc/{linux.Pid}/cmdline") && File.ReadAllText($"/proc/{linux.Pid}/cmdline").Contains("vm-keep", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AgentRestart_QemuDiedMeanwhile_ReportsCrashed()
    {
        await using var node = new TestNode();
        var vm = await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-lost"), CancellationToken.None);
        await node.Hypervisor.DisposeAsync();
        using (var qemu = System.Diagnostics.Process.GetProcessById(vm.Pid))
        {
            qemu.Kill();
            await qemu.WaitForExitAsync();
        }

        var restarted = node.NewInstance();
        node.Replace(restarted);
        var lost = (await restarted.ListVmsAsync(CancellationToken.None)).Single();

        Assert.Equal(VmState.Crashed, lost.State);
        Assert.Contains("not running", lost.Error, StringComparison.Ordinal);
        Assert.Equal(VmState.Running, (await restarted.StartVmAsync("vm-lost", paused: false, CancellationToken.None)).State);
    }

    [Fact]
    public async Task Qemu_RunsSandboxed_WithoutDefaultsOrNetworkListeners_AndAPrivateMonitor()
    {
        await using var node = new TestNode();
        var vm = await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-hard"), CancellationToken.None);

        var args = File.ReadAllText($"/proc/{vm.Pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(QemuCommandLine.SandboxPolicy, args[Array.IndexOf(args, "-sandbox") + 1]);
        Assert.Contains("-nodefaults", args);
        Assert.Equal("none", args[Array.IndexOf(args, "-display") + 1]);
        Assert.DoesNotContain("-vnc", args);
        Assert.DoesNotContain("-spice", args);
        if (Environment.IsPrivilegedProcess)
        {
            var uid = File.ReadAllLines($"/proc/{vm.Pid}/status").Single(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1];
            Assert.NotEqual("0", uid);
            Assert.Equal(uid + ":" + uid, args[Array.IndexOf(args, "-runas") + 1]);
        }

        Assert.Empty(ListeningTcpSockets(vm.Pid));
        var socket = Path.Combine(node.VmDirectory("vm-hard"), "qmp.sock");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
        // Root's, entered (not listed) by the guest's own group when the agent is root; the agent's alone otherwise.
        var folderMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | (Environment.IsPrivilegedProcess ? UnixFileMode.GroupExecute : 0);
        Assert.Equal(folderMode, File.GetUnixFileMode(node.VmDirectory("vm-hard")));
        Assert.Equal(0, (int)(File.GetUnixFileMode(Path.Combine(node.VmDirectory("vm-hard"), "serial.log")) & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite)));
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("a/b")]
    [InlineData("/etc")]
    [InlineData("..")]
    [InlineData("")]
    [InlineData("vm\0x")]
    public async Task Requests_WithIdsThatEscapeTheDataFolder_AreRefusedAndCreateNothing(string bad)
    {
        await using var node = new TestNode();
        await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-safe", start: false), CancellationToken.None);
        var before = Snapshot(node.Root);

        var errors = new List<HypervisorException>
        {
            await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.CreateVmAsync(Guests.Firmware(bad), CancellationToken.None)),
            await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.CreateVmAsync(WithImage(Guests.Firmware("vm-img"), bad), CancellationToken.None)),
            await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.StartVmAsync(bad, paused: false, CancellationToken.None)),
            await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.DeleteVmAsync(bad, CancellationToken.None)),
            await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.CreateSnapshotAsync("vm-safe", bad, "n", CancellationToken.None)),
            await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.RestoreSnapshotAsync("vm-safe", bad, CancellationToken.None)),
            await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.ExportSnapshotAsync("vm-safe", "s1", bad, CancellationToken.None)),
            await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.PrepareMigrationAsync(Guests.Firmware("vm-in"), bad, null, "", CancellationToken.None)),
            await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.Images.ImportAsync(bad, "/etc/hostname", new string('0', 64), CancellationToken.None)),
        };

        Assert.All(errors, e => Assert.Equal(HypervisorError.InvalidArgument, e.Error));
        Assert.Equal(before, Snapshot(node.Root));
        Assert.Single(await node.Hypervisor.ListVmsAsync(CancellationToken.None));
    }

    private static VmSpec WithImage(VmSpec spec, string image)
    {
        // An empty image id means "no image", which is valid: use a traversal instead.
        spec.Image = image.Length == 0 ? ".." : image;
        return spec;
    }

    private static string Snapshot(string root)
        => string.Join('\n', Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal));

    /// <summary>TCP sockets in LISTEN state that the process holds open.</summary>
    private static List<string> ListeningTcpSockets(int pid)
    {
        var inodes = new HashSet<string>();
        foreach (var fd in Directory.EnumerateFiles($"/proc/{pid}/fd"))
        {
            var target = new FileInfo(fd).LinkTarget;
            if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal))
            {
                inodes.Add(target["socket:[".Length..^1]);
            }
        }
        var listening = new List<string>();
        foreach (var table in new[] { $"/proc/{pid}/net/tcp", $"/proc/{pid}/net/tcp6" })
        {
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                // Field 3 is the state (0A = LISTEN), field 9 the inode.
                if (fields.Length > 9 && fields[3] == "0A" && inodes.Contains(fields[9]))
                {
                    listening.Add(fields[1]);
                }
            }
        }
        return listening;
    }

    [Fact]
    public void ListeningTcpSockets_SeesAListenerOfThisProcess()
    {
        // The helper above must be able to fail: it finds a socket this test process listens on.
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var found = ListeningTcpSockets(Environment.ProcessId);
        Assert.Contains(found, s => s.EndsWith(":" + port.ToString("X4", CultureInfo.InvariantCulture), StringComparison.Ordinal));
    }
}
