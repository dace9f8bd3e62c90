using System.Diagnostics;
using System.Globalization;

namespace Cloud.Scheduler.Benchmarks;

/// <summary>A phase's CPU per VM, in this process (controllers and load) and in PostgreSQL, what this process allocated, and its garbage collections.</summary>
internal sealed record CpuUse(double ProcessMs, double PostgresMs, double AllocatedKib, int Collections, double GcPauseMs);

/// <summary>
/// Measures where the CPU went during a phase: this process against PostgreSQL's (the
/// postmaster and every process it started, those that have exited included).
/// </summary>
/// <remarks>
/// PostgreSQL's share used to be the machine's busy time (/proc/stat) less this process's; the
/// machine's counters lag behind on a tickless kernel, and that difference came out negative
/// in short phases.
/// </remarks>
internal sealed class CpuSplit
{
    private readonly int _postmaster;
    private readonly TimeSpan _process = Process.GetCurrentProcess().TotalProcessorTime;
    private readonly double _postgres;
    private readonly long _allocated = GC.GetTotalAllocatedBytes();
    private readonly int _collections = GC.CollectionCount(0);
    private readonly TimeSpan _paused = GC.GetTotalPauseDuration();

    private CpuSplit(int postmaster)
    {
        _postmaster = postmaster;
        _postgres = PostgresMs(postmaster);
    }

    /// <summary>Starts measuring; <paramref name="clusterDirectory"/> holds the cluster's postmaster.pid.</summary>
    public static CpuSplit Start(string clusterDirectory)
        => new(int.Parse(File.ReadLines(Path.Combine(clusterDirectory, "postmaster.pid")).First(), CultureInfo.InvariantCulture));

    public CpuUse Stop(int vms)
    {
        var process = (Process.GetCurrentProcess().TotalProcessorTime - _process).TotalMilliseconds;
        var postgres = PostgresMs(_postmaster) - _postgres;
        vms = Math.Max(1, vms);
        return new CpuUse(process / vms, postgres / vms, (GC.GetTotalAllocatedBytes() - _allocated) / 1024.0 / vms,
            GC.CollectionCount(0) - _collections, (GC.GetTotalPauseDuration() - _paused).TotalMilliseconds);
    }

    /// <summary>
    /// Milliseconds of CPU the cluster has used: the postmaster's own and that of the children it
    /// has reaped (cutime, cstime), plus each running child's. /proc counts in clock ticks of 1/100 s.
    /// </summary>
    private static double PostgresMs(int postmaster)
    {
        long ticks = 0;
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(directory, "stat"));
            }
            catch (IOException)
            {
                continue; // exited meanwhile
            }
            // "pid (comm) state ppid ...": comm may hold spaces, so fields count from its ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var parent = int.Parse(fields[1], CultureInfo.InvariantCulture);
            if (pid == postmaster)
            {
                ticks += fields[11..15].Sum(f => long.Parse(f, CultureInfo.InvariantCulture));
            }
            else if (parent == postmaster)
            {
                ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            }
        }
        return ticks * 10.0;
    }
}
