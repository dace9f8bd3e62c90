using System.Diagnostics;
using System.Text;
using System.Threading.Channels;

namespace Cloud.Interop.Tests.Support;

/// <summary>
/// A Python process of the interop tests. Debian's /usr/bin/python3 is used on purpose: it is
/// the interpreter that has python3-grpcio. Output lines are queued for the test to read with
/// a deadline; disposing closes stdin (the scripts exit on EOF) and kills whatever is left.
/// </summary>
internal sealed class PythonProcess : IAsyncDisposable
{
    public const string Interpreter = "/usr/bin/python3";

    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly StringBuilder _stderr = new();

    private PythonProcess(Process process) => _process = process;

    public static PythonProcess Start(string workingDirectory, string pythonPath, string script, params string[] args)
        => Start(workingDirectory, pythonPath, new Dictionary<string, string>(), script, args);

    /// <summary>Starts <paramref name="script"/> with <paramref name="environment"/> added to its environment (TLS files, say).</summary>
    public static PythonProcess Start(string workingDirectory, string pythonPath, IReadOnlyDictionary<string, string> environment, string script, params string[] args)
    {
        var info = new ProcessStartInfo(Interpreter)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("-u");
        info.ArgumentList.Add(script);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        info.Environment["PYTHONPATH"] = pythonPath;
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }
        // Loopback traffic only: no proxy may be picked up from the environment.
        foreach (var proxy in new[] { "http_proxy", "https_proxy", "grpc_proxy", "HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY" })
        {
            info.Environment.Remove(proxy);
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var python = new PythonProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                python._lines.Writer.TryComplete();
            }
            else
            {
                python._lines.Writer.TryWrite(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (python._stderr)
                {
                    python._stderr.AppendLine(e.Data);
                }
            }
        };
        if (!process.Start())
        {
            throw new InvalidOperationException($"Could not start {Interpreter} {script}.");
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return python;
    }

    public string StandardError
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>The next line of output; null once the process closed its output.</summary>
    public async Task<string?> ReadLineAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            return await _lines.Reader.WaitToReadAsync(cts.Token) && _lines.Reader.TryRead(out var line) ? line : null;
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"No output from python within {timeout}. stderr:\n{StandardError}");
        }
    }

    /// <summary>The next line that <paramref name="match"/> accepts, skipping the others; fails after <paramref name="timeout"/>.</summary>
    public async Task<System.Text.Json.JsonElement> WaitForJsonAsync(Func<System.Text.Json.JsonElement, bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            var line = (left > TimeSpan.Zero ? await ReadLineAsync(left) : null)
                ?? throw new TimeoutException($"python printed no matching line within {timeout}. stderr:\n{StandardError}");
            using var document = System.Text.Json.JsonDocument.Parse(line);
            if (match(document.RootElement))
            {
                return document.RootElement.Clone();
            }
        }
    }

    /// <summary>Writes a line to the process's stdin.</summary>
    public async Task WriteLineAsync(string line)
    {
        await _process.StandardInput.WriteLineAsync(line);
        await _process.StandardInput.FlushAsync();
    }

    /// <summary>Waits for the process to exit on its own, at most <paramref name="timeout"/>; its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"python did not exit within {timeout}. stderr:\n{StandardError}");
        }
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.StandardInput.Close();
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            await _process.WaitForExitAsync(grace.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            // Did not exit on EOF in time; killed below.
        }
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            using var kill = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(kill.Token);
        }
        _process.Dispose();
    }
}
