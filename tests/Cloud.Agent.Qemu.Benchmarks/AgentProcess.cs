using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Cloud.Contracts.Agent.V1;
using Cloud.Testing;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Agent.Qemu.Benchmarks;

/// <summary>
/// The real node agent, published with Native AOT as operators deploy it, on the QEMU backend, in a process of its own
/// on a loopback address and a free port, with a throwaway data folder. No controller runs: the
/// agent's registration keeps retrying in the background, as it does while a controller is down.
/// Mutual TLS is on: the agent's TLS folder holds a node certificate from the tests' CA
/// (<see cref="TestTrust"/>), and <see cref="Client"/> presents the controller's certificate.
/// </summary>
internal sealed class AgentProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly GrpcChannel _channel;

    private AgentProcess(Process process, GrpcChannel channel, string url, string dataDirectory, string tlsDirectory)
    {
        TlsDirectory = tlsDirectory;
        _process = process;
        Url = url;
        _channel = channel;
        DataDirectory = dataDirectory;
        Client = new NodeAgent.NodeAgentClient(channel);
    }

    public NodeAgent.NodeAgentClient Client { get; }

    /// <summary>The agent's TLS folder (Agent:TlsDirectory), beside its data folder.</summary>
    public string TlsDirectory { get; }

    /// <summary>https://address:port, as the controller names the agent to other agents.</summary>
    public string Url { get; }

    public int Pid => _process.Id;

    public string DataDirectory { get; }

    public string VmDirectory(string vmId) => Path.Combine(DataDirectory, "vms", vmId);

    public static Task<AgentProcess> StartAsync(string address, string dataDirectory, CancellationToken cancellationToken)
        => StartAsync(address, dataDirectory, null, cancellationToken);

    /// <summary>The node name the agent on <paramref name="address"/> registers: bench-127-0-0-2 for 127.0.0.2.</summary>
    public static string NodeNameFor(string address) => "bench-" + address.Replace('.', '-');

    /// <param name="qemuTlsDirectory">Agent:Qemu:TlsDirectory: migrations over TLS with the QEMU certificate there; null for plaintext.</param>
    public static async Task<AgentProcess> StartAsync(string address, string dataDirectory, string? qemuTlsDirectory, CancellationToken cancellationToken)
    {
        var port = FreePort(address);
        var info = new ProcessStartInfo(await PublishedAgent.Value.WaitAsync(cancellationToken)) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        var node = NodeNameFor(address);
        var tlsDirectory = dataDirectory.TrimEnd('/') + "-tls";
        TestTrust.Shared.WriteNodeFolder(tlsDirectory, node, IPAddress.Parse(address));
        info.Environment["Agent__NodeName"] = node;
        info.Environment["Agent__Qemu__TlsDirectory"] = qemuTlsDirectory ?? "";
        info.Environment["Agent__Listen"] = $"{address}:{port}";
        info.Environment["Agent__ControllerUrl"] = "https://127.0.0.1:9";
        info.Environment["Agent__TlsDirectory"] = tlsDirectory;
        info.Environment["Agent__Backend"] = "qemu";
        info.Environment["Agent__Qemu__DataDirectory"] = dataDirectory;
        info.Environment["Agent__Qemu__Accelerator"] = "tcg";
        info.Environment["Agent__Qemu__ListenAddress"] = address;
        info.Environment["Agent__Qemu__MigrationPortRange"] = "ephemeral";
        info.Environment["Logging__LogLevel__Default"] = "Warning";
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
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
        var url = $"https://{address}:{port}";
        var agent = new AgentProcess(process, TestTrust.Shared.Channel(new Uri(url), TestTrust.Shared.Controller), url, dataDirectory, tlsDirectory);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                await agent.Client.GetNodeInfoAsync(new GetNodeInfoRequest(), new CallOptions(deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancellationToken));
                return agent;
            }
            catch (RpcException) when (DateTime.UtcNow < deadline && !process.HasExited)
            {
                await Task.Delay(100, cancellationToken);
            }
        }
    }

    /// <summary>Resident set of the agent process (QEMU processes are their own and not counted).</summary>
    public long RssBytes() => ReadStatusKb(_process.Id, "VmRSS:") * 1024;

    public long PeakRssBytes() => ReadStatusKb(_process.Id, "VmHWM:") * 1024;

    internal static long ReadStatusKb(int pid, string field)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line[field.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Migrates from this agent and reads the progress to its end; the completed one, or an exception saying how it ended.</summary>
    public async Task<MigrationProgress> MigrateAsync(MigrateRequest request, CancellationToken cancellationToken)
    {
        using var call = Client.Migrate(request, Deadline(cancellationToken));
        MigrationProgress? last = null;
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            last = call.ResponseStream.Current;
        }
        return last?.Phase == MigrationProgress.Types.Phase.Completed
            ? last
            : throw new InvalidOperationException($"Migration of {request.VmId} ended {last?.Phase}: {last?.Error}");
    }

    public static CallOptions Deadline(CancellationToken cancellationToken) => new(deadline: DateTime.UtcNow.AddMinutes(5), cancellationToken: cancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                var vms = await Client.ListVmsAsync(new ListVmsRequest(), Deadline(CancellationToken.None));
                foreach (var vm in vms.Vms)
                {
                    await Client.DeleteVmAsync(new VmRef { VmId = vm.VmId }, Deadline(CancellationToken.None));
                }
            }
        }
        finally
        {
            _channel.Dispose();
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }
            _process.Dispose();
            if (Directory.Exists(TlsDirectory))
            {
                Directory.Delete(TlsDirectory, recursive: true);
            }
        }
    }

    /// <summary>A port free on the address now (the OS picks it); whoever binds it next must be quick.</summary>
    internal static int FreePort(string address)
    {
        using var probe = new TcpListener(IPAddress.Parse(address), 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static readonly Lazy<Task<string>> PublishedAgent = new(PublishAgentAsync);

    /// <summary>
    /// Publishes the agent (Native AOT, Release, as deploy/ does) into agent/Cloud.Agent/bin/aot
    /// once per run; an unchanged agent publishes in seconds. Every benchmark runs that binary.
    /// </summary>
    private static async Task<string> PublishAgentAsync()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Cloud.sln")))
        {
            dir = dir.Parent;
        }
        if (dir is null)
        {
            throw new InvalidOperationException("Run the benchmarks from the repository (Cloud.sln not found above " + AppContext.BaseDirectory + ").");
        }
        var output = Path.Combine(dir.FullName, "agent", "Cloud.Agent", "bin", "aot");
        Console.Error.WriteLine("Publishing the agent with Native AOT into " + output + " ...");
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, WorkingDirectory = dir.FullName };
        foreach (var arg in new[] { "publish", "agent/Cloud.Agent", "-c", "Release", "-o", output, "-nologo", "-v", "quiet" })
        {
            info.ArgumentList.Add(arg);
        }
        using var publish = Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start.");
        await publish.WaitForExitAsync();
        var binary = Path.Combine(output, OperatingSystem.IsWindows() ? "Cloud.Agent.exe" : "Cloud.Agent");
        return publish.ExitCode == 0 && File.Exists(binary)
            ? binary
            : throw new InvalidOperationException($"dotnet publish of the agent failed (exit code {publish.ExitCode}); see its output above.");
    }
}
