using System.Diagnostics;

namespace Cloud.Agent.Qemu.Tests.Support;

/// <summary>qemu-io on a disk no QEMU has open: writes and checks patterns at offsets.</summary>
internal static class QemuIo
{
    /// <summary>Runs one qemu-io command on an image no QEMU has open; its output, after checking that it succeeded.</summary>
    public static async Task<string> RunAsync(string qcow2, string command)
    {
        var info = new ProcessStartInfo("qemu-io") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "-f", "qcow2", "-c", command, qcow2 })
        {
            info.ArgumentList.Add(arg);
        }
        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0 && !output.Contains("failed", StringComparison.OrdinalIgnoreCase), $"qemu-io {command}: exit {process.ExitCode}, {output}");
        return output;
    }
}
