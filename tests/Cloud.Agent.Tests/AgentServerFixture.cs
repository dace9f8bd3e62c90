using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Cloud.Contracts.Agent.V1;
using Cloud.Testing;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace Cloud.Agent.Tests;

/// <summary>
/// An agent on the fake backend at 127.0.0.2, with no controller to register with. It listens
/// with mutual TLS, as in production: its TLS folder holds a node certificate from the tests' CA
/// (<see cref="TestTrust"/>), and <see cref="Client"/> calls it as the controller does, with the
/// controller's certificate.
/// </summary>
public sealed class AgentServerFixture : IAsyncLifetime
{
    public const string NodeName = "agent-under-test";

    private WebApplication? _app;
    private GrpcChannel? _channel;

    /// <summary>The agent's TLS folder: the CA, and its node and QEMU certificates.</summary>
    public string TlsDirectory { get; } = TestTrust.NewFolder("agent-under-test-tls");

    /// <summary>https://127.0.0.2:PORT</summary>
    public Uri Url { get; private set; } = null!;

    /// <summary>A client with the controller's certificate, which may call every method.</summary>
    public NodeAgent.NodeAgentClient Client { get; private set; } = null!;

    /// <summary>A channel to the agent that trusts the CA and presents <paramref name="clientCertificate"/> (none when null).</summary>
    public GrpcChannel NewChannel(X509Certificate2? clientCertificate) => TestTrust.Shared.Channel(Url, clientCertificate);

    public async Task InitializeAsync()
    {
        var address = IPAddress.Parse("127.0.0.2");
        int port;
        using (var probe = new TcpListener(address, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        TestTrust.Shared.WriteNodeFolder(TlsDirectory, NodeName, address);
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Agent:NodeName"] = NodeName,
            ["Agent:Listen"] = $"127.0.0.2:{port}",
            ["Agent:TlsDirectory"] = TlsDirectory,
            // Nothing listens there: registration keeps retrying in the background, as it would
            // while a controller is down, and the node agent service works regardless.
            ["Agent:ControllerUrl"] = "https://127.0.0.1:9",
            ["Agent:Backend"] = "fake",
            ["Agent:Fake:Vcpus"] = "8",
        });
        builder.Logging.ClearProviders();
        builder.AddAgent();
        _app = builder.Build();
        _app.MapAgent();
        await _app.StartAsync();
        Url = new Uri($"https://127.0.0.2:{port}");
        _channel = NewChannel(TestTrust.Shared.Controller);
        Client = new NodeAgent.NodeAgentClient(_channel);
    }

    public async Task DisposeAsync()
    {
        _channel?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        if (Directory.Exists(TlsDirectory))
        {
            Directory.Delete(TlsDirectory, recursive: true);
        }
    }
}
