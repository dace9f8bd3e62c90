using System.Net;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;
using Cloud.Qmp;

namespace Cloud.Agent.Qemu.Tests;

/// <summary>Pure unit tests: the accelerator choice, the QEMU command line per platform, the QMP transport choice.</summary>
public sealed class CommandLineAndAcceleratorTests
{
    [Theory]
    [InlineData("auto", false, true, Accelerator.Kvm)]
    [InlineData("auto", false, false, Accelerator.Tcg)]
    [InlineData("auto", true, false, Accelerator.Whpx)]
    [InlineData("AUTO", true, true, Accelerator.Whpx)]
    [InlineData("", false, false, Accelerator.Tcg)]
    [InlineData("kvm", false, true, Accelerator.Kvm)]
    [InlineData("whpx", true, false, Accelerator.Whpx)]
    [InlineData("tcg", false, true, Accelerator.Tcg)]
    [InlineData("tcg", true, false, Accelerator.Tcg)]
    public void Select_UsableChoice_PicksTheAccelerator(string setting, bool windows, bool kvm, Accelerator expected)
    {
        Assert.True(AcceleratorSelector.TryParse(setting, out var choice));

        var (accelerator, error) = AcceleratorSelector.Select(choice, new AcceleratorProbe(windows, kvm));

        Assert.Null(error);
        Assert.Equal(expected, accelerator);
    }

    [Theory]
    [InlineData("kvm", false, false, "/dev/kvm")]
    [InlineData("kvm", true, false, "not available on Windows")]
    [InlineData("whpx", false, true, "only available on Windows")]
    public void Select_UnusableChoice_ExplainsWhy(string setting, bool windows, bool kvm, string reason)
    {
        Assert.True(AcceleratorSelector.TryParse(setting, out var choice));

        var (_, error) = AcceleratorSelector.Select(choice, new AcceleratorProbe(windows, kvm));

        Assert.NotNull(error);
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("hvf")]
    [InlineData("kvm,tcg")]
    public void Options_UnknownAccelerator_FailValidationNamingTheSetting(string setting)
    {
        var failures = QemuOptionsValidator.Check(new QemuOptions { DataDirectory = "/var/lib/cloud/agent", Accelerator = setting }, new AcceleratorProbe(false, false));

        Assert.Contains(failures, f => f.Contains("Agent:Qemu:Accelerator", StringComparison.Ordinal) && f.Contains(setting, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("ephemeral", true)]
    [InlineData("49152-49407", true)]
    [InlineData("80-90", false)]
    [InlineData("5000-4000", false)]
    [InlineData("0", false)]
    public void Options_MigrationPortRange_IsChecked(string range, bool valid)
    {
        var failures = QemuOptionsValidator.Check(new QemuOptions { DataDirectory = "/var/lib/cloud/agent", Accelerator = "tcg", MigrationPortRange = range }, new AcceleratorProbe(false, false));

        Assert.Equal(valid, !failures.Any(f => f.Contains("MigrationPortRange", StringComparison.Ordinal)));
    }

    [Fact]
    public void Build_WhpxWithPipeTransport_QemuServesQmpOnTheNamedPipe()
    {
        var paths = new VmPaths(@"C:\ProgramData\Cloud\Agent", "vm-1");
        var args = QemuCommandLine.Build(Spec(Accelerator.Whpx, windows: true, QmpEndpoint.Pipe(paths.QmpPipeName)));

        Assert.Equal($"pipe,id=qmp,path={paths.QmpPipeName}", After(args, "-chardev"));
        Assert.Equal("chardev=qmp,mode=control", After(args, "-mon"));
        Assert.Matches("^cloud-qmp-[0-9a-f]{24}$", paths.QmpPipeName);
        Assert.NotEqual(paths.QmpPipeName, new VmPaths(@"D:\Agent2", "vm-1").QmpPipeName);
        Assert.Throws<ArgumentException>(() => QmpEndpoint.Pipe(@"..\other"));
        Assert.Throws<ArgumentException>(() => QmpEndpoint.Pipe("x,path=y"));
    }

    [Theory]
    [InlineData("tcp", true)]
    [InlineData("pipe", true)]
    [InlineData("unix", false)]
    [InlineData("", false)]
    public void Options_WindowsQmpTransport_IsChecked(string transport, bool valid)
    {
        var failures = QemuOptionsValidator.Check(new QemuOptions { DataDirectory = "/var/lib/cloud/agent", Accelerator = "tcg", WindowsQmpTransport = transport }, new AcceleratorProbe(false, false));

        Assert.Equal(valid, !failures.Any(f => f.Contains("WindowsQmpTransport", StringComparison.Ordinal)));
    }

    [Fact]
    public void Build_Whpx_UsesWhpxAndLoopbackTcpQmp_WithoutSandboxOrRunas()
    {
        var args = QemuCommandLine.Build(Spec(Accelerator.Whpx, windows: true, QmpEndpoint.Tcp(IPAddress.Loopback, 50123)) with { RunAsUser = "200001:200001" });

        Assert.Equal("q35,accel=whpx", After(args, "-machine"));
        Assert.Equal("qemu64", After(args, "-cpu"));
        Assert.Equal("socket,id=qmp,host=127.0.0.1,port=50123,server=on,wait=off", After(args, "-chardev"));
        Assert.DoesNotContain("-sandbox", args);
        Assert.DoesNotContain("-runas", args);
        Assert.Contains("-nodefaults", args);
        Assert.Equal("none", After(args, "-display"));
        Assert.DoesNotContain(args, a => a.Contains("vnc", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void Build_LinuxKvm_SandboxesAndDropsPrivileges_WithUnixQmp()
    {
        var args = QemuCommandLine.Build(Spec(Accelerator.Kvm, windows: false, QmpEndpoint.Unix("/var/lib/cloud/agent/vms/vm-1/qmp.sock")) with { RunAsUser = "200001:200001" });

        Assert.Equal("q35,accel=kvm", After(args, "-machine"));
        Assert.Equal("host", After(args, "-cpu"));
        Assert.Equal("on,obsolete=deny,spawn=deny,resourcecontrol=deny", After(args, "-sandbox"));
        Assert.DoesNotContain("elevateprivileges", After(args, "-sandbox"), StringComparison.Ordinal);
        Assert.Equal("200001:200001", After(args, "-runas"));
        Assert.Equal("socket,id=qmp,path=/var/lib/cloud/agent/vms/vm-1/qmp.sock,server=on,wait=off", After(args, "-chardev"));
    }

    [Fact]
    public void Build_Hotplug_SetsMaxCpusAndMemorySlots_AndIncomingDefers()
    {
        var args = QemuCommandLine.Build(Spec(Accelerator.Tcg, windows: false, QmpEndpoint.Unix("/d/q.sock")) with
        {
            MaxVcpus = 4,
            MaxMemoryMb = 1024,
            MemorySlots = 2,
            Incoming = true,
            DiskPath = "/d/vms/a,b/disk.qcow2",
        });

        Assert.Equal("cpus=1,maxcpus=4", After(args, "-smp"));
        Assert.Equal("size=256M,slots=2,maxmem=1024M", After(args, "-m"));
        Assert.Equal("defer", After(args, "-incoming"));
        Assert.DoesNotContain("-S", args);
        // Disk queues follow max vCPUs, not boot vCPUs, so a hotplugged source and its destination match.
        Assert.Contains("virtio-blk-pci,drive=disk0,id=disk0-dev,bootindex=1,num-queues=4", args);
        // A comma in a path cannot inject options: the disk is given in JSON syntax.
        var blockdev = System.Text.Json.JsonDocument.Parse(After(args, "-blockdev")).RootElement;
        Assert.Equal("disk0", blockdev.GetProperty("node-name").GetString());
        Assert.Equal("/d/vms/a,b/disk.qcow2", blockdev.GetProperty("file").GetProperty("filename").GetString());
    }

    [Fact]
    public void Build_Paused_StopsTheVcpusFromTheStart()
    {
        var args = QemuCommandLine.Build(Spec(Accelerator.Tcg, windows: false, QmpEndpoint.Unix("/d/q.sock")) with { Paused = true });

        Assert.Single(args, a => a == "-S");
        Assert.DoesNotContain("-incoming", args);
    }

    [Fact]
    public void Build_SerialPathWithComma_IsEscaped()
    {
        var args = QemuCommandLine.Build(Spec(Accelerator.Tcg, windows: false, QmpEndpoint.Unix("/d/q,x.sock")) with { SerialLogPath = "/d/a,path=/etc/x" });

        Assert.Contains("file,id=serial0,path=/d/a,,path=/etc/x", args);
        Assert.Contains("socket,id=qmp,path=/d/q,,x.sock,server=on,wait=off", args);
    }

    [Fact]
    public void QmpEndpoint_Tcp_IsLoopbackOnly()
    {
        var error = Assert.Throws<ArgumentException>(() => QmpEndpoint.Tcp(IPAddress.Parse("10.0.0.1"), 4444));
        var ipv6 = QmpEndpoint.Tcp(IPAddress.IPv6Loopback, 4444);

        Assert.Contains("loopback", error.Message, StringComparison.Ordinal);
        Assert.Equal("socket,host=::1,port=4444,server=on,wait=off", ipv6.ToChardevOptions());
        Assert.Throws<ArgumentException>(() => QmpEndpoint.Unix("/" + new string('x', 120)));
    }

    [Theory]
    [InlineData("tcp:127.0.0.3:4444", "tcp:127.0.0.3:4444")]
    [InlineData("tcp:[::1]:4444", "tcp:[::1]:4444")]
    public void ParseTcpUri_LiteralAddress_IsKept(string uri, string expected)
        => Assert.Equal(expected, QemuHypervisor.ParseTcpUri(uri));

    [Theory]
    [InlineData("exec:reboot")]
    [InlineData("tcp:host.example:4444")]
    [InlineData("tcp:127.0.0.3:0")]
    [InlineData("tcp:127.0.0.3:99999")]
    [InlineData("unix:/tmp/x")]
    public void ParseTcpUri_AnythingElse_IsInvalidArgument(string uri)
        => Assert.Equal(HypervisorError.InvalidArgument, Assert.Throws<HypervisorException>(() => QemuHypervisor.ParseTcpUri(uri)).Error);

    [Theory]
    [InlineData("nbd://127.0.0.3:1/../../etc")]
    [InlineData("nbd://127.0.0.3:1/")]
    [InlineData("nbd://name:1/disk0")]
    [InlineData("file:///etc/passwd")]
    public void ParseNbdUri_BadUri_IsInvalidArgument(string uri)
        => Assert.Equal(HypervisorError.InvalidArgument, Assert.Throws<HypervisorException>(() => QemuHypervisor.ParseNbdUri(uri)).Error);

    private static QemuLaunchSpec Spec(Accelerator accelerator, bool windows, QmpEndpoint qmp) => new()
    {
        VmId = "vm-1",
        Accelerator = accelerator,
        Windows = windows,
        Vcpus = 1,
        MaxVcpus = 1,
        MemoryMb = 256,
        MaxMemoryMb = 256,
        Qmp = qmp,
        SerialLogPath = "/d/serial.log",
    };

    private static string After(IReadOnlyList<string> args, string option)
    {
        var index = args.ToList().IndexOf(option);
        Assert.True(index >= 0 && index + 1 < args.Count, option + " is missing");
        return args[index + 1];
    }
}
