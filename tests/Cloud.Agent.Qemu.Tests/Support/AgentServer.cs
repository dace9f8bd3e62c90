using System.Net;
using System.Net.Sockets;
using Cloud.Contracts.Agent.V1;
using Cloud.Testing;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cloud.Agent.Qemu.Tests.Support;

/// <summary>
/// A real node agent (its gRPC service on Kestrel) on the QEMU backend, listening on its own
/// loopback address and a free port, with a throwaway data folder. No controller runs: the
/// registration loop retries in the background and the NodeAgent service works regardless.
/// Mutual TLS is on: the agent's TLS folder holds a node certificate from the tests' CA, and
/// <see cref="Client"/> presents the controller's certificate.
/// </summary>
internal sealed class AgentServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly GrpcChannel _channel;

    private AgentServer(WebApplication app, string address, string url, string root, GrpcChannel channel)
    {
        _app = app;
        _channel = channel;
        Address = address;
        Url = url;
        Root = root;
        Client = new NodeAgent.NodeAgentClient(channel);
    }

    public string Address { get; }

    /// <summary>The agent's address as the controller names it to other agents (https://IP:port).</summary>
    public string Url { get; }

    public string Root { get; }

    public string DataDirectory => Path.Combine(Root, "d");

    /// <summary>The agent's TLS folder (ca.pem, node.pem/key, qemu.pem/key).</summary>
    public string TlsDirectory => Path.Combine(Root, "tls");

    public NodeAgent.NodeAgentClient Client { get; }

    public QemuHypervisor Hypervisor => _app.Services.GetRequiredService<QemuHypervisor>();

    public string VmDirectory(string vmId) => Path.Combine(DataDirectory, "vms", vmId);

    public string SerialLog(string vmId) => Path.Combine(VmDirectory(vmId), "serial.log");

    /// <summary>The node's name: agent-127-0-0-2 for 127.0.0.2.</summary>
    public string NodeName { get; private init; } = "";

    public static string NodeNameFor(string address) => "agent-" + address.Replace('.', '-');

    /// <param name="address">The node's loopback address (its agent and its QEMUs listen there).</param>
    /// <param name="qemuTlsDirectory">Agent:Qemu:TlsDirectory: migrations over TLS with the certificate there (see <see cref="TestCertificates"/>).</param>
    public static async Task<AgentServer> StartAsync(string address, string? qemuTlsDirectory = null)
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Parse(address), 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        // Short: QMP sockets live under it, and unix socket paths are limited to 107 bytes.
        var root = Path.Combine("/tmp", "cqa-" + Guid.NewGuid().ToString("N")[..8]);
        var node = NodeNameFor(address);
        TestTrust.Shared.WriteNodeFolder(Path.Combine(root, "tls"), node, IPAddress.Parse(address));
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Agent:NodeName"] = node,
            ["Agent:Listen"] = $"{address}:{port}",
            ["Agent:ControllerUrl"] = "https://127.0.0.1:9",
            ["Agent:TlsDirectory"] = Path.Combine(root, "tls"),
            ["Agent:Backend"] = "qemu",
            ["Agent:Qemu:DataDirectory"] = Path.Combine(root, "d"),
            ["Agent:Qemu:Accelerator"] = "tcg",
            ["Agent:Qemu:ListenAddress"] = address,
            ["Agent:Qemu:MigrationPortRange"] = "ephemeral",
            ["Agent:Qemu:TlsDirectory"] = qemuTlsDirectory ?? "",
        });
        builder.Logging.ClearProviders();
        builder.AddAgent();
        var app = builder.Build();
        app.MapAgent();
        await app.StartAsync();
        var url = $"https://{address}:{port}";
        return new AgentServer(app, address, url, root, TestTrust.Shared.Channel(new Uri(url), TestTrust.Shared.Controller)) { NodeName = node };
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            foreach (var vm in await Hypervisor.ListVmsAsync(CancellationToken.None))
            {
                await Hypervisor.DeleteVmAsync(vm.VmId, CancellationToken.None);
            }
        }
        finally
        {
            _channel.Dispose();
            await _app.StopAsync();
            await _app.DisposeAsync();
            if (Directory.Exists(Root))
            {
                Directory.Delete(Root, recursive: true);
            }
        }
    }
}
