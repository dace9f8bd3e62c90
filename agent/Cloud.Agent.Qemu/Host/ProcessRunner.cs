using System.Diagnostics;
using System.Text;

namespace Cloud.Agent.Qemu;

internal sealed record ProcessResult(int ExitCode, string Stdout, string Stderr)
{
    public string ErrorText => (Stderr.Length > 0 ? Stderr : Stdout).Trim();
}

/// <summary>Runs short-lived host tools (qemu-img, chown, useradd) with a deadline and captured output.</summary>
internal static class ProcessRunner
{
    public static async Task<ProcessResult> RunAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        // The C locale keeps tools' messages in English and their number formats stable for parsing.
        info.Environment["LC_ALL"] = "C";
        using var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new HypervisorToolException($"Cannot run {fileName}: {ex.Message}", ex);
        }
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            throw new HypervisorToolException($"{Path.GetFileName(fileName)} did not finish within {timeout.TotalSeconds:0} s.");
        }
        return new ProcessResult(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }
}

/// <summary>A host tool could not be run or failed; carries its message for the user.</summary>
internal sealed class HypervisorToolException(string message, Exception? inner = null) : Exception(message, inner);
