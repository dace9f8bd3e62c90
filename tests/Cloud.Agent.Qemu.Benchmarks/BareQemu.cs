using System.Diagnostics;
using Cloud.Qmp;

namespace Cloud.Agent.Qemu.Benchmarks;

/// <summary>
/// qemu-system-x86_64 started directly with a given command line, and its monitor: the baseline
/// the agent is measured against. Ready means what the agent waits for too: the monitor has
/// answered (greeting and capabilities) and query-status says how the guest is.
/// </summary>
internal sealed class BareQemu : IAsyncDisposable
{
    private BareQemu(Process process, QmpClient qmp)
    {
        Process = process;
        Qmp = qmp;
    }

    public Process Process { get; }

    public QmpClient Qmp { get; }

    public static async Task<BareQemu> StartAsync(IReadOnlyList<string> args, string workingDirectory, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo("qemu-system-x86_64") { UseShellExecute = false, WorkingDirectory = workingDirectory };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("qemu-system-x86_64 did not start.");
        var qmp = await QmpClient.ConnectAsync(QmpEndpoint.Unix(SocketPath(args)), new QmpClientOptions { ConnectTimeout = TimeSpan.FromSeconds(60) }, cancellationToken);
        await qmp.ExecuteAsync("query-status", null, cancellationToken);
        return new BareQemu(process, qmp);
    }

    /// <summary>The agent's QEMU command line of one VM, moved to another folder (its files, socket and pid file).</summary>
    public static List<string> CommandLineOf(int pid, string fromDirectory, string toDirectory)
        => [.. File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(a => a.Replace(fromDirectory, toDirectory, StringComparison.Ordinal))];

    private static string SocketPath(IReadOnlyList<string> args)
    {
        var chardev = args.First(a => a.StartsWith("socket,id=qmp,", StringComparison.Ordinal));
        var path = chardev.Split(',').First(p => p.StartsWith("path=", StringComparison.Ordinal));
        return path["path=".Length..];
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Qmp.ExecuteAsync("quit", null, TimeSpan.FromSeconds(5), CancellationToken.None);
        }
        catch (QmpException)
        {
        }
        await Qmp.DisposeAsync();
        using var exit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await Process.WaitForExitAsync(exit.Token);
        }
        catch (OperationCanceledException)
        {
            Process.Kill();
            await Process.WaitForExitAsync();
        }
        Process.Dispose();
    }
}
