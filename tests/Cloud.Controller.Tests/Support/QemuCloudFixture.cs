using System.Net;
using System.Net.Sockets;

namespace Cloud.Controller.Tests.Support;

/// <summary>
/// The same small cloud with agents on the QEMU backend: real qemu-system-x86_64 under TCG,
/// firmware-only guests (no OS: enough for power, resize, snapshots). Each agent keeps its VMs
/// under a short folder of its own in /tmp (QMP socket paths are limited to 107 bytes). Live
/// migrations go over QEMU's TLS: every node gets a QEMU certificate from the fixture's own CA.
/// </summary>
public class QemuCloudFixture : CloudFixture
{
    private readonly string _root = Path.Combine("/tmp", "cqc-" + Guid.NewGuid().ToString("N")[..8]);

    protected override Dictionary<string, string?> AgentBackendSettings(int n, IPAddress address)
    {
        var ports = FreePortPair(address);
        return new()
        {
            ["Agent:NodeName"] = $"qemu-node-{n}",
            ["Agent:Backend"] = "qemu",
            ["Agent:Qemu:DataDirectory"] = Path.Combine(_root, n.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ["Agent:Qemu:Accelerator"] = "tcg",
            ["Agent:Qemu:ListenAddress"] = address.ToString(),
            ["Agent:Qemu:MigrationPortRange"] = $"{ports}-{ports + 1}",
            ["Agent:Qemu:TotalVcpus"] = "8",
            ["Agent:Qemu:TotalMemoryMb"] = "8192",
            ["Agent:Qemu:TotalDiskGb"] = "64",
            // Firmware-only guests ignore ACPI power-down: do not wait long before forcing it.
            ["Agent:Qemu:ColdResizeStopTimeout"] = "00:00:01",
            ["Agent:Qemu:NodeName"] = $"qemu-node-{n}",
        };
    }

    /// <summary>Where node qemu-node-<paramref name="n"/> keeps image <paramref name="imageId"/>, if it holds it.</summary>
    public string NodeImageDirectory(int n, string imageId)
        => Path.Combine(_root, n.ToString(System.Globalization.CultureInfo.InvariantCulture), "images", imageId);

    /// <summary>The folder node <paramref name="nodeName"/> (qemu-node-N) keeps VM <paramref name="vmId"/> in.</summary>
    public string NodeVmDirectory(string nodeName, string vmId)
        => Path.Combine(_root, nodeName["qemu-node-".Length..], "vms", Guid.Parse(vmId).ToString("N"));

    public override async Task DisposeAsync()
    {
        try
        {
            // Guests outlive their agent (an agent that restarts re-adopts them): delete what a
            // failed test left, so that no QEMU outlives the tests.
            foreach (var url in AgentUrls)
            {
                using var channel = NewAgentChannel(url);
                var agent = new Cloud.Contracts.Agent.V1.NodeAgent.NodeAgentClient(channel);
                try
                {
                    foreach (var vm in (await agent.ListVmsAsync(new Cloud.Contracts.Agent.V1.ListVmsRequest())).Vms)
                    {
                        await agent.DeleteVmAsync(new Cloud.Contracts.Agent.V1.VmRef { VmId = vm.VmId });
                    }
                }
                catch (Grpc.Core.RpcException) when (StoppedAgents.Contains(AgentUrls.IndexOf(url) + 1))
                {
                    // A test stopped this agent on purpose.
                }
            }
            await base.DisposeAsync();
        }
        finally
        {
            if (Directory.Exists(_root))
            {
                Directory.Delete(_root, recursive: true);
            }
        }
    }

    /// <summary>Two consecutive free ports (the agent's migration range), as the OS hands them out.</summary>
    private static int FreePortPair(IPAddress address)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var first = Ports.Free(address);
            try
            {
                using var next = new TcpListener(address, first + 1);
                next.Start();
                return first;
            }
            catch (SocketException)
            {
            }
        }
        throw new InvalidOperationException("No two consecutive free ports were found.");
    }
}

[CollectionDefinition(Name)]
public sealed class QemuCloudCollection : ICollectionFixture<QemuCloudFixture>
{
    public const string Name = "qemu-cloud";
}
