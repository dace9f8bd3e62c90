using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Cloud.Controller.Data.Embedded;

/// <summary>
/// Finds the machine's PostgreSQL server programs and runs them. PostgreSQL refuses to run as
/// root, so a root process runs them as the <c>postgres</c> user through runuser.
/// </summary>
internal sealed class PostgresTools
{
    /// <summary>Overrides where initdb and pg_ctl are looked for.</summary>
    public const string BinDirectoryVariable = "CLOUD_POSTGRES_BIN";

    public const string ServiceUser = "postgres";

    private PostgresTools(string binDirectory)
    {
        BinDirectory = binDirectory;
    }

    public string BinDirectory { get; }

    public string InitDb => Path.Combine(BinDirectory, "initdb");

    public string PgCtl => Path.Combine(BinDirectory, "pg_ctl");

    /// <summary>True when the server must run as <see cref="ServiceUser"/> rather than as this process's user.</summary>
    public static bool RunsAsServiceUser => Environment.IsPrivilegedProcess;

    /// <summary>
    /// $CLOUD_POSTGRES_BIN, then the directories of PATH, then the newest
    /// /usr/lib/postgresql/N/bin (Debian and Ubuntu keep the server programs there, off PATH).
    /// </summary>
    public static PostgresTools Find()
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable(BinDirectoryVariable) is { Length: > 0 } configured)
        {
            candidates.Add(configured);
        }
        candidates.AddRange((Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        if (Directory.Exists("/usr/lib/postgresql"))
        {
            candidates.AddRange(Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => (Directory: d, Version: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : -1))
                .Where(d => d.Version >= 0)
                .OrderByDescending(d => d.Version)
                .Select(d => Path.Combine(d.Directory, "bin")));
        }
        foreach (var directory in candidates)
        {
            if (File.Exists(Path.Combine(directory, "initdb")) && File.Exists(Path.Combine(directory, "pg_ctl")))
            {
                return new PostgresTools(Path.GetFullPath(directory));
            }
        }
        throw new InvalidOperationException(
            $"PostgreSQL's initdb and pg_ctl were not found (looked in ${BinDirectoryVariable}, PATH and /usr/lib/postgresql/*/bin). " +
            "Install the PostgreSQL server (Debian: apt-get install postgresql), set " + BinDirectoryVariable +
            ", or configure ConnectionStrings:Ledger to use an existing server.");
    }

    /// <summary>Runs a server program as the user the server runs as, and returns its exit code and output.</summary>
    public Task<ToolResult> RunAsync(string program, IReadOnlyList<string> arguments, string workingDirectory, CancellationToken cancellationToken)
        => ToolRunner.RunAsync(AsServiceUser(program, arguments), workingDirectory, cancellationToken);

    /// <summary>The synchronous twin of <see cref="RunAsync"/>, for process-exit handlers.</summary>
    public ToolResult Run(string program, IReadOnlyList<string> arguments, string workingDirectory, TimeSpan timeout)
        => ToolRunner.Run(AsServiceUser(program, arguments), workingDirectory, timeout);

    /// <summary>Gives a folder to the server's user, so that it can create and write files there.</summary>
    public static async Task GiveToServiceUserAsync(string path, CancellationToken cancellationToken)
    {
        if (!RunsAsServiceUser)
        {
            return;
        }
        var result = await ToolRunner.RunAsync(new ProcessStartInfo("chown") { ArgumentList = { $"{ServiceUser}:", path } }, "/", cancellationToken).ConfigureAwait(false);
        result.ThrowIfFailed($"chown {ServiceUser}: {path}");
    }

    /// <summary>Starts a program detached from this process (its own session), as the server's user.</summary>
    public void StartDetached(string program, IReadOnlyList<string> arguments, string workingDirectory)
    {
        var start = AsServiceUser("setsid", ["-f", program, .. arguments]);
        start.WorkingDirectory = workingDirectory;
        start.UseShellExecute = false;
        using var process = Process.Start(start) ?? throw new InvalidOperationException("setsid did not start.");
        // setsid -f forks and returns at once; the program lives on in its own session.
        if (!process.WaitForExit(TimeSpan.FromSeconds(30)) || process.ExitCode != 0)
        {
            throw new InvalidOperationException($"setsid -f {program} failed.");
        }
    }

    private static ProcessStartInfo AsServiceUser(string program, IReadOnlyList<string> arguments)
    {
        var start = RunsAsServiceUser ? new ProcessStartInfo("runuser") { ArgumentList = { "-u", ServiceUser, "--", program } } : new ProcessStartInfo(program);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        return start;
    }
}

/// <summary>Exit code and combined output of a finished program.</summary>
internal sealed record ToolResult(string Command, int ExitCode, string Output)
{
    public bool Succeeded => ExitCode == 0;

    public void ThrowIfFailed(string what)
    {
        if (!Succeeded)
        {
            throw new InvalidOperationException($"{what} failed with exit code {ExitCode}: {Output.Trim()}");
        }
    }
}

internal static class ToolRunner
{
    public static async Task<ToolResult> RunAsync(ProcessStartInfo start, string workingDirectory, CancellationToken cancellationToken)
    {
        using var process = Start(start, workingDirectory);
        var output = new StringBuilder();
        var stdout = PumpAsync(process.StandardOutput, output);
        var stderr = PumpAsync(process.StandardError, output);
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        await Task.WhenAll(stdout, stderr).ConfigureAwait(false);
        return new ToolResult(Describe(start), process.ExitCode, output.ToString());
    }

    public static ToolResult Run(ProcessStartInfo start, string workingDirectory, TimeSpan timeout)
    {
        using var process = Start(start, workingDirectory);
        var output = new StringBuilder();
        var stdout = PumpAsync(process.StandardOutput, output);
        var stderr = PumpAsync(process.StandardError, output);
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            return new ToolResult(Describe(start), -1, $"timed out after {timeout}");
        }
        Task.WaitAll([stdout, stderr], timeout);
        return new ToolResult(Describe(start), process.ExitCode, output.ToString());
    }

    private static Process Start(ProcessStartInfo start, string workingDirectory)
    {
        start.WorkingDirectory = workingDirectory;
        start.UseShellExecute = false;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.RedirectStandardInput = false;
        // Messages in English whatever the machine's locale, so that they can be read in logs.
        start.Environment["LC_ALL"] = "C";
        try
        {
            return Process.Start(start) ?? throw new InvalidOperationException($"{start.FileName} did not start.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"Could not run {start.FileName}: {e.Message}", e);
        }
    }

    private static async Task PumpAsync(StreamReader reader, StringBuilder output)
    {
        while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line)
        {
            lock (output)
            {
                output.AppendLine(line);
            }
        }
    }

    private static string Describe(ProcessStartInfo start) => $"{start.FileName} {string.Join(' ', start.ArgumentList)}";
}
