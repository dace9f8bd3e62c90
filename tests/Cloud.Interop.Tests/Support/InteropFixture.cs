using System.Diagnostics;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Cloud.Contracts.Agent.V1;
using Cloud.Contracts.Node.V1;
using Cloud.Contracts.Trust;
using Cloud.Controller.Tests.Support;
using Cloud.Testing;
using Grpc.Net.Client;

namespace Cloud.Interop.Tests.Support;

[CollectionDefinition(Name)]
public sealed class InteropCollection : ICollectionFixture<InteropFixture>
{
    public const string Name = "python-grpcio interop";
}

/// <summary>
/// The controller tests' cloud (PostgreSQL, the controller, two agents on the fake backend, all on
/// loopback), the Python stubs (generated once by Debian's protoc and grpc_python_plugin from the
/// repository's protos and Debian's grpc-proto), and a Python NodeAgent server (agent_server.py).
/// TLS is on everywhere, as in production: the Python agent serves mutual TLS with a node
/// certificate of node <see cref="PythonNodeName"/> from the tests' CA, and Python clients trust
/// that CA (<see cref="TrustingCa"/>) and present the controller's certificate to agents
/// (<see cref="AsController"/>). Every Python process started here is stopped in DisposeAsync.
/// </summary>
public sealed class InteropFixture : IAsyncLifetime
{
    private const string Protoc = "/usr/bin/protoc";
    private const string PythonPlugin = "/usr/bin/grpc_python_plugin";
    private const string GrpcProtos = "/usr/share/grpc-proto/grpc";
    private static readonly TimeSpan StartupTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The node the Python agent is: the name in its certificate and in its NodeInfo.</summary>
    public const string PythonNodeName = "py-agent";

    /// <summary>Debian's grpc-proto files, renamed so that their Python modules do not shadow the grpc package.</summary>
    private static readonly (string Source, string Name)[] GrpcServiceProtos =
    [
        ("health/v1/health.proto", "grpc_health_v1.proto"),
        ("reflection/v1/reflection.proto", "grpc_reflection_v1.proto"),
        ("reflection/v1alpha/reflection.proto", "grpc_reflection_v1alpha.proto"),
    ];

    private readonly string _work = Path.Combine(Path.GetTempPath(), "cloud-interop-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly SemaphoreSlim _nodeGate = new(1, 1);
    private PythonProcess? _agent;
    private GrpcChannel? _agentChannel;
    private string? _pythonNodeId;

    public CloudFixture Cloud { get; } = new();

    /// <summary>The PEM files Python processes use: the CA, a stranger CA, the controller's certificate, the Python agent's TLS folder.</summary>
    private string Tls => Path.Combine(_work, "tls");

    /// <summary>A Python client's environment that trusts the cloud CA and presents no certificate (probe.py's CLOUD_CA).</summary>
    public IReadOnlyDictionary<string, string> TrustingCa => new Dictionary<string, string> { ["CLOUD_CA"] = Path.Combine(Tls, "ca.pem") };

    /// <summary>A Python client's environment that trusts the cloud CA and presents the controller's certificate, as agents require.</summary>
    public IReadOnlyDictionary<string, string> AsController => new Dictionary<string, string>
    {
        ["CLOUD_CA"] = Path.Combine(Tls, "ca.pem"),
        ["CLOUD_CERT"] = Path.Combine(Tls, "controller.pem"),
        ["CLOUD_KEY"] = Path.Combine(Tls, "controller.key"),
    };

    /// <summary>A Python client's environment that trusts another CA than the cloud's.</summary>
    public IReadOnlyDictionary<string, string> TrustingStranger => new Dictionary<string, string> { ["CLOUD_CA"] = Path.Combine(Tls, "stranger-ca.pem") };

    /// <summary>Where the generated Python modules are (the scripts' PYTHONPATH).</summary>
    public string Stubs => Path.Combine(_work, "stubs");

    /// <summary>The Python NodeAgent server's address.</summary>
    public Uri PythonAgentUrl { get; private set; } = null!;

    /// <summary>A C# client of the Python NodeAgent server.</summary>
    public NodeAgent.NodeAgentClient PythonAgent { get; private set; } = null!;

    /// <summary>What the Python agent printed: its observations, one JSON object a line.</summary>
    internal PythonProcess PythonAgentProcess => _agent!;

    private static string ScriptDirectory => Path.Combine(AppContext.BaseDirectory, "Python");

    public async Task InitializeAsync()
    {
        foreach (var required in new[] { PythonProcess.Interpreter, Protoc, PythonPlugin, Path.Combine(GrpcProtos, GrpcServiceProtos[0].Source) })
        {
            if (!File.Exists(required))
            {
                throw new InvalidOperationException(
                    $"{required} is missing: the interop tests need Debian's python3-grpcio, protobuf-compiler, protobuf-compiler-grpc and grpc-proto (deploy/dev/test.sh installs them).");
            }
        }
        await GenerateStubsAsync();
        WriteTlsFiles();
        await Cloud.InitializeAsync();

        _agent = PythonProcess.Start(ScriptDirectory, Stubs, new Dictionary<string, string> { ["CLOUD_TLS_DIR"] = Path.Combine(Tls, PythonNodeName) }, "agent_server.py");
        var ready = await _agent.WaitForJsonAsync(e => e.TryGetProperty("port", out _), StartupTimeout);
        PythonAgentUrl = new Uri($"https://127.0.0.1:{ready.GetProperty("port").GetInt32()}");
        _agentChannel = TestTrust.Shared.Channel(PythonAgentUrl, TestTrust.Shared.Controller);
        PythonAgent = new NodeAgent.NodeAgentClient(_agentChannel);
    }

    private void WriteTlsFiles()
    {
        var trust = TestTrust.Shared;
        trust.WriteNodeCa(Tls);
        PemFiles.Write(Path.Combine(Tls, "controller.pem"), trust.Controller.ExportCertificatePem(), secret: false);
        PemFiles.Write(Path.Combine(Tls, "controller.key"), trust.Controller.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem(), secret: true);
        PemFiles.Write(Path.Combine(Tls, "stranger-ca.pem"), TestTrust.NewStranger().Authority.CertificatePem(), secret: false);
        trust.WriteNodeFolder(Path.Combine(Tls, PythonNodeName), PythonNodeName, System.Net.IPAddress.Loopback);
    }

    private async Task GenerateStubsAsync()
    {
        var imports = Path.Combine(_work, "grpc-proto");
        Directory.CreateDirectory(imports);
        Directory.CreateDirectory(Stubs);
        foreach (var (source, name) in GrpcServiceProtos)
        {
            File.Copy(Path.Combine(GrpcProtos, source), Path.Combine(imports, name));
        }
        var protos = Path.Combine(AppContext.BaseDirectory, "protos");
        var cloudProtos = Directory.GetFiles(Path.Combine(protos, "cloud"), "*.proto", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(protos, p).Replace('\\', '/'))
            .Order(StringComparer.Ordinal);
        var info = new ProcessStartInfo(Protoc)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var arg in (string[])["-I", protos, "-I", imports, "--python_out=" + Stubs, "--grpc_out=" + Stubs,
                     "--plugin=protoc-gen-grpc=" + PythonPlugin, .. cloudProtos, .. GrpcServiceProtos.Select(p => p.Name)])
        {
            info.ArgumentList.Add(arg);
        }
        using var protoc = Process.Start(info) ?? throw new InvalidOperationException("Could not start protoc.");
        using var timeout = new CancellationTokenSource(StartupTimeout);
        var stderr = protoc.StandardError.ReadToEndAsync(timeout.Token);
        await protoc.WaitForExitAsync(timeout.Token);
        if (protoc.ExitCode != 0)
        {
            throw new InvalidOperationException($"protoc failed ({protoc.ExitCode}): {await stderr}");
        }
    }

    /// <summary>Makes the Python agent treat VM <paramref name="agentVmId"/> as "slow" or "missing", once it says it does.</summary>
    public async Task SetBehaviourAsync(string agentVmId, string behaviour)
    {
        await PythonAgentProcess.WriteLineAsync(JsonSerializer.Serialize(new Dictionary<string, string> { ["vm_id"] = agentVmId, ["behaviour"] = behaviour }));
        await PythonAgentProcess.WaitForJsonAsync(e => Field(e, "event") == "behaviour" && Field(e, "vm_id") == agentVmId, StartupTimeout);
    }

    /// <summary>The next observation of the Python agent that <paramref name="match"/> accepts.</summary>
    public Task<JsonElement> AgentObservedAsync(Func<JsonElement, bool> match) => PythonAgentProcess.WaitForJsonAsync(match, StartupTimeout);

    /// <summary>Runs probe.py once, trusting the cloud CA and presenting no certificate, and returns the JSON it printed.</summary>
    public Task<JsonElement> ProbeAsync(params string[] args) => ProbeAsync(TrustingCa, args);

    /// <summary>Runs probe.py once with <paramref name="tls"/> (<see cref="TrustingCa"/>, <see cref="AsController"/>, ...) and returns the JSON it printed.</summary>
    public async Task<JsonElement> ProbeAsync(IReadOnlyDictionary<string, string> tls, params string[] args)
    {
        await using var probe = PythonProcess.Start(ScriptDirectory, Stubs, tls, "probe.py", args);
        var result = await probe.WaitForJsonAsync(_ => true, StartupTimeout);
        var exitCode = await probe.WaitForExitAsync(StartupTimeout);
        Assert.True(exitCode == 0, $"probe.py {string.Join(' ', args)} exited with {exitCode}. stderr:\n{probe.StandardError}");
        return result;
    }

    /// <summary>A string property of a JSON line, or null when it has none.</summary>
    public static string? Field(JsonElement element, string name)
        => element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>host:port of a URL, as grpcio wants its target.</summary>
    public static string Target(Uri url) => $"{url.Host}:{url.Port}";

    /// <summary>
    /// The Python agent as a node of the controller, registered the way an agent registers
    /// (RegistrationLoop: its NodeInfo, then NodeRegistry.Register on the controller's node port
    /// with its address, presenting its node certificate), and
    /// cordoned, so that no VM a test creates through the API lands there. Its node id.
    /// </summary>
    public async Task<string> PythonNodeAsync()
    {
        await _nodeGate.WaitAsync();
        try
        {
            if (_pythonNodeId is null)
            {
                var info = await PythonAgent.GetNodeInfoAsync(new GetNodeInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
                Assert.Equal(PythonNodeName, info.NodeName);
                using var certificate = TestTrust.Shared.Node(PythonNodeName);
                using var channel = TestTrust.Shared.Channel(Cloud.NodeUrl, certificate);
                var registered = await new NodeRegistry.NodeRegistryClient(channel).RegisterAsync(
                    new RegisterRequest { Node = info, AgentAddress = PythonAgentUrl.ToString().TrimEnd('/') }, deadline: DateTime.UtcNow.AddSeconds(10));
                var (status, body) = await Cloud.Http.PostAsync($"/v1/nodes/{info.NodeName}/cordon", "{}");
                Assert.True(status == System.Net.HttpStatusCode.OK, body.ToString());
                _pythonNodeId = registered.NodeId;
            }
            return _pythonNodeId;
        }
        finally
        {
            _nodeGate.Release();
        }
    }

    /// <summary>A RUNNING VM row of <paramref name="project"/> on the Python agent's node, as a placement leaves it; its id.</summary>
    public async Task<Guid> VmOnPythonNodeAsync(string project, string name)
    {
        var nodeId = Guid.Parse(await PythonNodeAsync());
        var vmId = Guid.CreateVersion7();
        await Cloud.ScalarAsync(
            """
            WITH v AS (INSERT INTO vms (id, project_id, name, flavor_name, state, vcpus, memory_mb, disk_gb, labels, node_id, created_at, updated_at)
                       VALUES (@id, @p, @n, 't.nano', 'RUNNING', 1, 64, 0, '{}', @node, now(), now()) RETURNING 1)
            SELECT count(*) FROM v
            """, ("id", vmId), ("p", project), ("n", name), ("node", nodeId));
        return vmId;
    }

    public async Task DisposeAsync()
    {
        _agentChannel?.Dispose();
        if (_agent is not null)
        {
            await _agent.DisposeAsync();
        }
        await Cloud.DisposeAsync();
        if (Directory.Exists(_work))
        {
            Directory.Delete(_work, recursive: true);
        }
    }
}
