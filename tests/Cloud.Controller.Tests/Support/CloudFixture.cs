using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Cloud.Agent;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Hosting;
using Cloud.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Cloud.Controller.Tests.Support;

/// <summary>
/// A small cloud in one process: the controller on a fresh PostgreSQL database, and two agents
/// (fake backend) on 127.0.0.2 and 127.0.0.3, talking real gRPC over loopback. TLS is on as in
/// production: the controller's CA is the tests' (<see cref="TestTrust"/>), each agent joins
/// with a join token made through the API, and every client a test makes trusts that CA.
/// </summary>
public class CloudFixture : IAsyncLifetime
{
    public const string OperatorToken = "test-operator-token";

    private readonly List<WebApplication> _apps = [];

    public string ConnectionString { get; private set; } = "";
    public Uri RestUrl { get; private set; } = null!;
    public Uri GrpcUrl { get; private set; } = null!;

    /// <summary>The controller's node port (mutual TLS), where agents join, register and pull images.</summary>
    public Uri NodeUrl { get; private set; } = null!;

    /// <summary>The controller's CA folder, and each agent's TLS folder (1-based: index n for agent n).</summary>
    public string TrustDirectory { get; } = TestTrust.NewFolder("cloud-trust");

    public List<string> AgentTlsDirectories { get; } = [""];
    public HttpClient Http { get; private set; } = null!;

    /// <summary>The controller's image store (Images:StorePath), a folder of its own in /tmp.</summary>
    public string ImageStorePath { get; } = Path.Combine(Path.GetTempPath(), "cloud-images-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>Images:MaxUploadBytes of the tests' controller: small, so that "too large" is cheap to send.</summary>
    public const long MaxUploadBytes = 4 * 1024 * 1024;

    /// <summary>The controller's services, for tests that run one of its parts directly.</summary>
    public IServiceProvider ControllerServices { get; private set; } = null!;

    /// <summary>The agents' gRPC addresses.</summary>
    public List<Uri> AgentUrls { get; } = [];

    public virtual async Task InitializeAsync()
    {
        ConnectionString = await PostgresFixture.Shared.CreateDatabaseAsync();
        await DatabaseMigrator.MigrateAsync(ConnectionString, CancellationToken.None);

        var restPort = Ports.Free(IPAddress.Loopback);
        var grpcPort = Ports.Free(IPAddress.Loopback);
        var nodePort = Ports.Free(IPAddress.Loopback);
        RestUrl = new Uri($"https://127.0.0.1:{restPort}");
        GrpcUrl = new Uri($"https://127.0.0.1:{grpcPort}");
        NodeUrl = new Uri($"https://127.0.0.1:{nodePort}");
        TestTrust.Shared.WriteCaFolder(TrustDirectory);

        var controllerSettings = new Dictionary<string, string?>
        {
            ["Controller:RestListen"] = $"127.0.0.1:{restPort}",
            ["Controller:GrpcListen"] = $"127.0.0.1:{grpcPort}",
            ["Controller:NodeListen"] = $"127.0.0.1:{nodePort}",
            ["Trust:Directory"] = TrustDirectory,
            ["Auth:OperatorTokenSha256:0"] = TokenAuthenticator.Sha256Hex(OperatorToken),
            ["Nodes:HeartbeatInterval"] = "00:00:01",
            ["Nodes:DownAfter"] = "00:00:10",
            ["Operations:SweepInterval"] = "00:00:01",
            ["Scheduler:RefreshInterval"] = "00:00:00.200",
            // Tests place dozens of VMs at once on two nodes: a herd that loses many claim races.
            ["Scheduler:MaxClaimAttempts"] = "64",
            ["Images:StorePath"] = ImageStorePath,
            ["Images:MaxUploadBytes"] = MaxUploadBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            // Tests run the snapshot audit themselves (SnapshotAudit.AuditOnceAsync), when they mean to.
            ["Snapshots:AuditInterval"] = "01:00:00",
        };
        foreach (var (key, value) in ControllerSettings())
        {
            controllerSettings[key] = value;
        }
        var controller = NewBuilder(controllerSettings);
        controller.AddController(ConnectionString);
        var controllerApp = controller.Build();
        controllerApp.MapController();
        ControllerServices = controllerApp.Services;
        await StartAsync(controllerApp);
        Http = NewHttpClient();
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", OperatorToken);

        for (var n = 1; n <= 2; n++)
        {
            var address = IPAddress.Parse($"127.0.0.{n + 1}");
            var tls = TestTrust.NewFolder($"cloud-agent-{n}-tls");
            AgentTlsDirectories.Add(tls);
            TestTrust.Shared.WriteNodeCa(tls);
            var settings = new Dictionary<string, string?>
            {
                ["Agent:Listen"] = $"{address}:{Ports.Free(address)}",
                ["Agent:ControllerUrl"] = NodeUrl.ToString().TrimEnd('/'),
                ["Agent:TlsDirectory"] = tls,
            };
            AgentUrls.Add(new Uri($"https://{settings["Agent:Listen"]}"));
            foreach (var (key, value) in AgentBackendSettings(n, address))
            {
                settings[key] = value;
            }
            settings["Agent:JoinToken"] = await CreateJoinTokenAsync(settings["Agent:NodeName"]!);
            var agent = NewBuilder(settings);
            agent.AddAgent();
            ConfigureAgent(agent, n);
            var agentApp = agent.Build();
            agentApp.MapAgent();
            await StartAsync(agentApp);
        }

        await WaitForNodesAsync(2);
    }

    /// <summary>The backend of agent <paramref name="n"/>: the fake one here, QEMU in <see cref="QemuCloudFixture"/>.</summary>
    protected virtual Dictionary<string, string?> AgentBackendSettings(int n, IPAddress address) => new()
    {
        ["Agent:NodeName"] = $"test-node-{n}",
        ["Agent:Backend"] = "fake",
        ["Agent:Fake:Vcpus"] = "4",
        ["Agent:Fake:MemoryMb"] = "8192",
        ["Agent:Fake:DiskGb"] = "100",
    };

    /// <summary>Settings the controller gets besides (or instead of) the fixture's own.</summary>
    protected virtual Dictionary<string, string?> ControllerSettings() => [];

    /// <summary>A last say over agent <paramref name="n"/>'s services, after the agent registered its own.</summary>
    protected virtual void ConfigureAgent(WebApplicationBuilder agent, int n)
    {
    }

    private static WebApplicationBuilder NewBuilder(Dictionary<string, string?> settings)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.ClearProviders();
        return builder;
    }

    private async Task StartAsync(WebApplication app)
    {
        _apps.Add(app);
        await app.StartAsync();
    }

    /// <summary>An HTTP client of the controller's REST API with no token: the one way tests make one, so that they all trust the cloud's TLS.</summary>
    public HttpClient NewHttpClient() => new(TestTrust.Shared.Handler()) { BaseAddress = RestUrl };

    /// <summary>A gRPC channel to the controller's public gRPC port (or <paramref name="url"/>), made the one way tests make them.</summary>
    public Grpc.Net.Client.GrpcChannel NewGrpcChannel(Uri? url = null) => TestTrust.Shared.Channel(url ?? GrpcUrl);

    /// <summary>A channel to an agent that presents the controller's certificate, as the controller calls agents.</summary>
    public Grpc.Net.Client.GrpcChannel NewAgentChannel(Uri agentUrl) => TestTrust.Shared.Channel(agentUrl, TestTrust.Shared.Controller);

    /// <summary>A channel to the controller's node port presenting a certificate of node <paramref name="node"/>, as that node's agent calls.</summary>
    public Grpc.Net.Client.GrpcChannel NewNodeChannel(string node) => TestTrust.Shared.Channel(NodeUrl, TestTrust.Shared.Node(node));

    /// <summary>A join token for node <paramref name="node"/>, made through the operator's API.</summary>
    public async Task<string> CreateJoinTokenAsync(string node, int ttlSeconds = 0)
    {
        using var response = await Http.PostAsync($"/v1/nodes/{node}/join-tokens",
            new StringContent($$"""{"ttlSeconds":{{ttlSeconds}}}""", System.Text.Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, body);
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("token").GetString()!;
    }

    /// <summary>Polls the node list until <paramref name="count"/> nodes are UP.</summary>
    public async Task WaitForNodesAsync(int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            using var response = await Http.GetAsync("/v1/nodes");
            if (response.StatusCode == HttpStatusCode.TooManyRequests && DateTime.UtcNow < deadline)
            {
                // A fixture with a low rate limit (RateLimitCloudFixture): not yet.
                await Task.Delay(500);
                continue;
            }
            response.EnsureSuccessStatusCode();
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var up = doc.RootElement.GetProperty("nodes").EnumerateArray().Count(n => n.GetProperty("state").GetString() == "UP");
            if (up >= count)
            {
                return;
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Only {up} of {count} nodes came up.");
            }
            await Task.Delay(100);
        }
    }

    public async Task<long> ScalarAsync(string sql, params (string Name, object Value)[] parameters)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task<object?> QueryAsync(string sql, params (string Name, object Value)[] parameters)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }
        return await command.ExecuteScalarAsync();
    }

    /// <summary>The services of agent <paramref name="n"/> (1-based), running in this process.</summary>
    public IServiceProvider AgentServices(int n) => _apps[n].Services;

    /// <summary>The agents (1-based) a test stopped.</summary>
    public HashSet<int> StoppedAgents { get; } = [];

    /// <summary>Stops agent <paramref name="n"/> (1-based) as if its process died: it answers no call and sends no heartbeat.</summary>
    public async Task StopAgentAsync(int n)
    {
        StoppedAgents.Add(n);
        await _apps[n].StopAsync();
    }

    public virtual async Task DisposeAsync()
    {
        Http?.Dispose();
        for (var i = _apps.Count - 1; i >= 0; i--)
        {
            await _apps[i].StopAsync();
            await _apps[i].DisposeAsync();
        }
        foreach (var folder in AgentTlsDirectories.Append(TrustDirectory).Append(ImageStorePath))
        {
            if (folder.Length > 0 && Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
    }
}

[CollectionDefinition(Name)]
public sealed class CloudCollection : ICollectionFixture<CloudFixture>
{
    public const string Name = "cloud";
}
