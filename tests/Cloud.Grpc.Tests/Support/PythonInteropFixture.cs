using System.Diagnostics;
using System.Text.Json;
using ServingStatus = Cloud.Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cloud.Grpc.Tests.Support;

[CollectionDefinition(Name)]
public sealed class PythonInteropCollection : ICollectionFixture<PythonInteropFixture>
{
    public const string Name = "python-grpcio interop";
}

/// <summary>
/// Generates the Python stubs once (Debian's protoc and grpc_python_plugin), and runs the
/// Python peers the interop tests share: the client script against our server, and the
/// Python server for our client. Everything started here is stopped in DisposeAsync.
/// </summary>
public sealed class PythonInteropFixture : IAsyncLifetime
{
    private static readonly TimeSpan StartupTimeout = TimeSpan.FromSeconds(30);

    private readonly string _stubs = Path.Combine(Path.GetTempPath(), "cloud-grpc-interop-" + Guid.NewGuid().ToString("N"));
    private Task<ClientRun>? _clientRun;
    private Task<Uri>? _pythonServerAddress;
    private GrpcTestServer? _server;
    private PythonProcess? _pythonServer;

    internal static string ScriptDirectory => Path.Combine(AppContext.BaseDirectory, "Interop");

    private const string PythonPlugin = "/usr/bin/grpc_python_plugin";

    public async Task InitializeAsync()
    {
        foreach (var required in new[] { PythonProcess.Interpreter, PythonPlugin })
        {
            if (!File.Exists(required))
            {
                throw new InvalidOperationException(
                    $"{required} is missing: the interop tests need Debian's python3-grpcio, protobuf-compiler and protobuf-compiler-grpc.");
            }
        }
        Directory.CreateDirectory(_stubs);
        var protos = Path.Combine(ScriptDirectory, "protos");
        var info = new ProcessStartInfo("protoc")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     "-I", protos,
                     "--python_out=" + _stubs,
                     "--grpc_python_out=" + _stubs,
                     "--plugin=protoc-gen-grpc_python=" + PythonPlugin,
                     "echo.proto", "health.proto",
                 })
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

    /// <summary>Runs echo_client.py against a fresh C# server once; later calls get the same results.</summary>
    internal Task<ClientRun> ClientRunAsync() => _clientRun ??= RunClientAsync();

    /// <summary>Starts echo_server.py once and returns its address.</summary>
    internal Task<Uri> PythonServerAsync() => _pythonServerAddress ??= StartPythonServerAsync();

    private async Task<ClientRun> RunClientAsync()
    {
        _server = await GrpcTestServer.StartAsync();
        _server.Health.SetStatus("echo.v1.Echo", ServingStatus.Serving);
        await using var client = PythonProcess.Start(ScriptDirectory, _stubs, "echo_client.py", _server.Address.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var results = new Dictionary<string, JsonElement>();
        while (await client.ReadLineAsync(StartupTimeout) is { } line)
        {
            using var document = JsonDocument.Parse(line);
            var result = document.RootElement.Clone();
            var name = result.GetProperty("case").GetString()!;
            if (name == "done")
            {
                return new ClientRun(results, _server);
            }
            results[name] = result;
        }
        throw new InvalidOperationException($"echo_client.py ended before it was done. stderr:\n{client.StandardError}");
    }

    private async Task<Uri> StartPythonServerAsync()
    {
        _pythonServer = PythonProcess.Start(ScriptDirectory, _stubs, "echo_server.py");
        var line = await _pythonServer.ReadLineAsync(StartupTimeout)
                   ?? throw new InvalidOperationException($"echo_server.py exited before serving. stderr:\n{_pythonServer.StandardError}");
        using var document = JsonDocument.Parse(line);
        return new Uri($"http://127.0.0.1:{document.RootElement.GetProperty("port").GetInt32()}");
    }

    public async Task DisposeAsync()
    {
        if (_pythonServer is not null)
        {
            await _pythonServer.DisposeAsync();
        }
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        Directory.Delete(_stubs, recursive: true);
    }
}

/// <summary>What echo_client.py reported per case, and the server it called.</summary>
internal sealed record ClientRun(IReadOnlyDictionary<string, JsonElement> Results, GrpcTestServer Server);
