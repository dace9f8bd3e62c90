using System.Diagnostics;
using System.Globalization;
using Cloud.Agent.Qemu.Tests.Support;

namespace Cloud.Agent.Qemu.Tests;

/// <summary>Every guest's QEMU runs as a uid of its own, and its files are that uid's alone (the agent runs as root here).</summary>
[Collection(QemuCollection.Name)]
public sealed class GuestIsolationTests
{
    [Fact]
    public async Task Two_guests_run_as_two_uids_and_neither_can_read_the_others_disk()
    {
        Assert.True(Environment.IsPrivilegedProcess, "These tests need root: they check the uids QEMU drops to.");
        // Two agents on one host, as a dev cloud runs them: the ids must differ across agents too.
        await using var nodeA = new TestNode();
        await using var nodeB = new TestNode();
        var a = await nodeA.Hypervisor.CreateVmAsync(Guests.Firmware("vm-a"), CancellationToken.None);
        var b = await nodeB.Hypervisor.CreateVmAsync(Guests.Firmware("vm-b"), CancellationToken.None);

        var uidA = ProcessIds(a.Pid, "Uid:");
        var uidB = ProcessIds(b.Pid, "Uid:");
        Assert.NotEqual(uidA, uidB);
        Assert.True(GuestIdRange.TryParse(nodeA.Options.GuestIdRange, out var range));
        Assert.True(range.Contains(uidA) && range.Contains(uidB) && uidA != range.ProbeId && uidB != range.ProbeId, $"uids {uidA}, {uidB} outside {range}");
        Assert.Equal(uidA, ProcessIds(a.Pid, "Gid:"));
        Assert.Equal(uidA.ToString(CultureInfo.InvariantCulture), ProcessLine(a.Pid, "Groups:"));
        Assert.Equal(uidA.ToString(CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(nodeA.VmDirectory("vm-a"), "guest-id")).Trim());

        var diskA = Path.Combine(nodeA.VmDirectory("vm-a"), "disk.qcow2");
        var diskB = Path.Combine(nodeB.VmDirectory("vm-b"), "disk.qcow2");
        Assert.Equal($"{uidA}:{uidA} 600", await StatAsync(diskA));
        Assert.Equal($"{uidB}:{uidB} 600", await StatAsync(diskB));
        Assert.Equal($"0:{uidA} 710", await StatAsync(nodeA.VmDirectory("vm-a")));
        Assert.Equal($"{uidA}:{uidA} 600", await StatAsync(nodeA.SerialLog("vm-a")));

        var own = await ReadAsAsync(uidA, diskA);
        Assert.True(own.ExitCode == 0, $"guest A cannot read its own disk: {own.Stderr}");
        Assert.StartsWith("QFI", own.Stdout, StringComparison.Ordinal);
        var other = await ReadAsAsync(uidA, diskB);
        Assert.NotEqual(0, other.ExitCode);
        Assert.Contains("Permission denied", other.Stderr, StringComparison.Ordinal);
        var back = await ReadAsAsync(uidB, diskA);
        Assert.Contains("Permission denied", back.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cached_images_and_snapshots_are_readable_by_no_guest()
    {
        Assert.True(Environment.IsPrivilegedProcess, "These tests need root: they check the uids QEMU drops to.");
        await using var node = new TestNode();
        var bytes = new byte[1 << 20];
        bytes[0] = 7;
        await node.Hypervisor.Images.ImportChunksAsync("tenant-private", "raw", ImagePullStoreTests.Sha256(bytes), bytes.Length, ImagePullStoreTests.Chunks(bytes), CancellationToken.None);
        var spec = Guests.Firmware("vm-reader");
        spec.Image = "tenant-private";
        var vm = await node.Hypervisor.CreateVmAsync(spec, CancellationToken.None);
        var uid = ProcessIds(vm.Pid, "Uid:");
        await node.Hypervisor.CreateSnapshotAsync("vm-reader", "snap-1", "first", CancellationToken.None);

        // The guest's QEMU reads the image (opened before it dropped to its uid), its uid cannot.
        var image = Path.Combine(node.Options.DataDirectory, "images", "tenant-private", "disk.raw");
        Assert.Equal("0:0 600", await StatAsync(image));
        Assert.Contains("Permission denied", (await ReadAsAsync(uid, image)).Stderr, StringComparison.Ordinal);
        var snapshot = Path.Combine(node.VmDirectory("vm-reader"), "snapshots", "snap-1", "disk.qcow2");
        Assert.True(File.Exists(snapshot), "the snapshot's disk is missing");
        Assert.Contains("Permission denied", (await ReadAsAsync(uid, snapshot)).Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_guest_keeps_its_uid_across_an_agent_restart_and_a_delete_gives_it_back()
    {
        Assert.True(Environment.IsPrivilegedProcess, "These tests need root: they check the uids QEMU drops to.");
        await using var node = new TestNode();
        var vm = await node.Hypervisor.CreateVmAsync(Guests.Firmware("vm-keep"), CancellationToken.None);
        var uid = ProcessIds(vm.Pid, "Uid:");
        await node.Hypervisor.StopVmAsync("vm-keep", force: true, TimeSpan.Zero, CancellationToken.None);

        await node.Hypervisor.DisposeAsync();
        var restarted = node.NewInstance();
        node.Replace(restarted);
        var again = await restarted.StartVmAsync("vm-keep", paused: false, CancellationToken.None);
        Assert.Equal(uid, ProcessIds(again.Pid, "Uid:"));

        var claim = Path.Combine(node.Options.GuestIdRegistry, uid.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(node.VmDirectory("vm-keep"), File.ReadAllText(claim).Trim());
        await restarted.DeleteVmAsync("vm-keep", CancellationToken.None);
        Assert.False(File.Exists(claim), "the deleted VM's uid is still claimed");
    }

    [Theory]
    [InlineData("200000-265535", true)]
    [InlineData("", true)]
    [InlineData("100-2000", false)]
    [InlineData("65000-66000", false)]
    [InlineData("300000-300000", false)]
    [InlineData("abc", false)]
    public void GuestIdRange_is_validated_at_start(string range, bool valid)
    {
        var failures = QemuOptionsValidator.Check(new QemuOptions { DataDirectory = "/var/lib/cloud/agent", Accelerator = "tcg", GuestIdRange = range }, new AcceleratorProbe(false, false));

        Assert.Equal(valid, !failures.Any(f => f.Contains("GuestIdRange", StringComparison.Ordinal)));
        if (range == "65000-66000")
        {
            // nobody (65534) lives there on Debian.
            Assert.Contains(failures, f => f.Contains("nobody", StringComparison.Ordinal));
        }
    }

    private static string ProcessLine(int pid, string field)
        => File.ReadAllLines($"/proc/{pid}/status").Single(l => l.StartsWith(field, StringComparison.Ordinal))[field.Length..].Trim();

    /// <summary>The real, effective, saved and file-system ids of the process, which must all be one.</summary>
    private static int ProcessIds(int pid, string field)
    {
        var ids = ProcessLine(pid, field).Split('\t', StringSplitOptions.RemoveEmptyEntries).Distinct().ToArray();
        Assert.True(ids.Length == 1, $"pid {pid} {field} {string.Join(",", ids)}");
        return int.Parse(ids[0], CultureInfo.InvariantCulture);
    }

    private static async Task<string> StatAsync(string path) => (await RunAsync("stat", "-c", "%u:%g %a", path)).Stdout.Trim();

    /// <summary>Reads the first bytes of a file as the uid and gid, with no other groups, as an escaped QEMU could.</summary>
    private static Task<(int ExitCode, string Stdout, string Stderr)> ReadAsAsync(int id, string path)
    {
        var text = id.ToString(CultureInfo.InvariantCulture);
        return RunAsync("setpriv", "--reuid", text, "--regid", text, "--clear-groups", "--", "head", "-c", "3", path);
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout, stderr);
    }
}
