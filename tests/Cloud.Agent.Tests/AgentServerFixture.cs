using System.Net;
using System.Net.Sockets;
using Cloud.Contracts.Agent.V1;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace Cloud.Agent.Tests;

/// <summary>An agent on the fake backend at 127.0.0.2, with no controller to register with.</summary>
public sealed class AgentServerFixture : IAsyncLifetime
{
    private WebApplication? _app;
    private GrpcChannel? _channel;

    public NodeAgent.NodeAgentClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var address = IPAddress.Parse("127.0.0.2");
        int port;
        using (var probe = new TcpListener(address, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Agent:NodeName"] = "agent-under-test",
            ["Agent:Listen"] = $"127.0.0.2:{port}",
            // Nothing listens there: registration keeps retrying in the background, as it would
            // while a controller is down, and the node agent service works regardless.
            ["Agent:ControllerUrl"] = "http://127.0.0.1:9",
            ["Agent:Backend"] = "fake",
            ["Agent:Fake:Vcpus"] = "8",
        });
        builder.Logging.ClearProviders();
        builder.AddAgent();
        _app = builder.Build();
        _app.MapAgent();
        await _app.StartAsync();
        _channel = GrpcChannel.ForAddress($"http://127.0.0.2:{port}");
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
    }
}
