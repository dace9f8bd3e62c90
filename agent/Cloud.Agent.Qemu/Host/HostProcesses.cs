using System.Diagnostics;
using System.Globalization;

namespace Cloud.Agent.Qemu;

/// <summary>What /proc says about a process: liveness, command line, CPU time and memory.</summary>
internal static class HostProcesses
{
    /// <summary>USER_HZ: the unit of the CPU times in /proc/PID/stat; 100 on every Linux architecture QEMU's hosts use.</summary>
    public const double ClockTicksPerSecond = 100;

    public static bool IsAlive(int pid)
    {
        if (pid <= 0)
        {
            return false;
        }
        if (!OperatingSystem.IsLinux())
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                return !process.HasExited;
            }
            catch (ArgumentException)
            {
                return false;
            }
        }
        var stat = ReadStatFields(pid);
        // A zombie has exited; it only waits to be reaped by whoever adopted it.
        return stat is not null && stat[0] != "Z";
    }

    /// <summary>The process's argv joined by spaces, or null when it is gone.</summary>
    public static string? ReadCommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>User+system CPU time in clock ticks and the start time in ticks since boot.</summary>
    public static (long CpuTicks, long StartTicks)? ReadCpu(int pid)
    {
        var fields = ReadStatFields(pid);
        if (fields is null || fields.Length < 20)
        {
            return null;
        }
        // Fields after "(comm)": state is field 3, utime 14, stime 15, starttime 22 (1-based, man 5 proc).
        if (!long.TryParse(fields[11], NumberStyles.Integer, CultureInfo.InvariantCulture, out var utime)
            || !long.TryParse(fields[12], NumberStyles.Integer, CultureInfo.InvariantCulture, out var stime)
            || !long.TryParse(fields[19], NumberStyles.Integer, CultureInfo.InvariantCulture, out var start))
        {
            return null;
        }
        return (utime + stime, start);
    }

    public static long? ReadRssBytes(int pid)
    {
        try
        {
            var statm = File.ReadAllText($"/proc/{pid}/statm").Split(' ');
            return statm.Length > 1 && long.TryParse(statm[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var pages)
                ? pages * Environment.SystemPageSize
                : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static double? ReadUptimeSeconds()
    {
        try
        {
            var text = File.ReadAllText("/proc/uptime").Split(' ')[0];
            return double.Parse(text, CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or FormatException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static void Kill(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Already gone.
        }
    }

    /// <summary>The fields of /proc/PID/stat after the "(comm)" field, which may itself contain spaces.</summary>
    private static string[]? ReadStatFields(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        var close = text.LastIndexOf(')');
        return close < 0 ? null : text[(close + 1)..].Trim().Split(' ');
    }
}
