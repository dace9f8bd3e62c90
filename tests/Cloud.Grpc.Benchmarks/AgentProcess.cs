using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Cloud.Grpc.Benchmarks;

/// <summary>
/// The real node agent, published with Native AOT as operators deploy it, in a process of its own
/// on a loopback address and a free port. No controller runs: the agent's registration goes to a
/// loopback port where nothing listens and keeps retrying in the background, as it does while a
/// controller is down. An agent with mutual TLS gets a TLS folder from <see cref="BenchTrust"/>
/// and is called at https://, presenting the controller's certificate, as the controller calls it.
/// </summary>
internal sealed class AgentProcess : IAsyncDisposable
{
    private readonly Process _process;
    private string? _tlsDirectory;

    private AgentProcess(Process process, AgentClient client)
    {
        _process = process;
        Client = client;
    }

    public AgentClient Client { get; }

    public int Pid => _process.Id;

    /// <summary>The fake backend: VMs simulated in memory, no QEMU.</summary>
    public static Task<AgentProcess> StartFakeAsync(string address, CancellationToken cancellationToken)
        => StartAsync(address, new Dictionary<string, string> { ["Agent__Backend"] = "fake" }, cancellationToken);

    /// <summary>The QEMU backend with its data (and image store) in <paramref name="dataDirectory"/>; no guest is started.</summary>
    public static Task<AgentProcess> StartQemuAsync(string address, string dataDirectory, CancellationToken cancellationToken)
        => StartAsync(address, new Dictionary<string, string>
        {
            ["Agent__Backend"] = "qemu",
            ["Agent__Qemu__DataDirectory"] = dataDirectory,
            ["Agent__Qemu__Accelerator"] = "tcg",
            ["Agent__Qemu__ListenAddress"] = address,
            ["Agent__Qemu__MigrationPortRange"] = "ephemeral",
        }, cancellationToken);

    private static async Task<AgentProcess> StartAsync(string address, Dictionary<string, string> backend, CancellationToken cancellationToken)
    {
        var port = FreePort(address);
        var info = new ProcessStartInfo(await PublishedAgent.Value.WaitAsync(cancellationToken)) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        var node = "bench-" + address.Replace('.', '-');
        var tls = BenchTrust.AgentUsesTls(RepositoryRoot());
        var scheme = tls ? "https" : "http";
        info.Environment["Agent__NodeName"] = node;
        info.Environment["Agent__Listen"] = $"{address}:{port}";
        // Port 9 (discard) on loopback: nothing listens, so registration fails fast and retries with backoff.
        info.Environment["Agent__ControllerUrl"] = $"{scheme}://127.0.0.1:9";
        string? tlsDirectory = null;
        if (tls)
        {
            tlsDirectory = Directory.CreateTempSubdirectory("cloud-grpc-bench-tls-").FullName;
            BenchTrust.Shared.WriteNodeFolder(tlsDirectory, node, IPAddress.Parse(address));
            info.Environment["Agent__TlsDirectory"] = tlsDirectory;
        }
        info.Environment["Logging__LogLevel__Default"] = "Warning";
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        foreach (var (key, value) in backend)
        {
            info.Environment[key] = value;
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("The agent did not start.");
        // Drain its output so that a chatty agent never blocks on a full pipe.
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { Length: > 0 } line)
            {
                Console.Error.WriteLine("agent: " + line);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var agent = new AgentProcess(process, AgentClient.Connect($"{scheme}://{address}:{port}")) { _tlsDirectory = tlsDirectory };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!await agent.Client.IsServingAsync(cancellationToken))
        {
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                await agent.DisposeAsync();
                throw new InvalidOperationException($"The agent on {address}:{port} did not answer within 60 s" + (process.HasExited ? $" (it exited with code {process.ExitCode})." : "."));
            }
            await Task.Delay(100, cancellationToken);
        }
        return agent;
    }

    /// <summary>A field of /proc/PID/status in kB, such as "VmRSS:".</summary>
    public long StatusKb(string field)
    {
        var line = File.ReadLines($"/proc/{_process.Id}/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        if (_tlsDirectory is not null && Directory.Exists(_tlsDirectory))
        {
            Directory.Delete(_tlsDirectory, recursive: true);
        }
    }

    /// <summary>A port free on the address now (the OS picks it); whoever binds it next must be quick.</summary>
    private static int FreePort(string address)
    {
        using var probe = new TcpListener(IPAddress.Parse(address), 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static readonly Lazy<Task<string>> PublishedAgent = new(PublishAgentAsync);

    /// <summary>
    /// Publishes the agent of this tree (Native AOT, Release, as deploy/ does) into
    /// agent/Cloud.Agent/bin/aot once per run; an unchanged agent publishes in seconds.
    /// </summary>
    private static async Task<string> PublishAgentAsync()
    {
        var root = RepositoryRoot();
        var output = Path.Combine(root, "agent", "Cloud.Agent", "bin", "aot");
        Console.Error.WriteLine("Publishing the agent with Native AOT into " + output + " ...");
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, WorkingDirectory = root };
        foreach (var arg in new[] { "publish", "agent/Cloud.Agent", "-c", "Release", "-o", output, "-nologo", "-v", "quiet" })
        {
            info.ArgumentList.Add(arg);
        }
        using var publish = Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start.");
        await publish.WaitForExitAsync();
        var binary = Path.Combine(output, "Cloud.Agent");
        return publish.ExitCode == 0 && File.Exists(binary)
            ? binary
            : throw new InvalidOperationException($"dotnet publish of the agent failed (exit code {publish.ExitCode}); see its output above.");
    }

    /// <summary>The repository the benchmark runs from (Cloud.sln above the binary): the agent of that tree is the one measured.</summary>
    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Cloud.sln")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("Run the benchmark from the repository (Cloud.sln not found above " + AppContext.BaseDirectory + ").");
    }
}
