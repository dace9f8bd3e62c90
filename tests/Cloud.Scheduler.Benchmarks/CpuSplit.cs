using System.Diagnostics;

namespace Cloud.Scheduler.Benchmarks;

/// <summary>A phase's CPU per VM, in this process (controllers and load) and in the rest of the machine, and what this process allocated.</summary>
internal sealed record CpuUse(double ProcessMs, double RestOfMachineMs, double AllocatedKib, int Collections);

/// <summary>
/// Measures where the machine's CPU went during a phase: this process against everything else,
/// which on a quiet host is PostgreSQL (/proc/stat counts every core).
/// </summary>
internal sealed class CpuSplit
{
    private readonly TimeSpan _process = Process.GetCurrentProcess().TotalProcessorTime;
    private readonly double _machine = MachineBusySeconds();
    private readonly long _allocated = GC.GetTotalAllocatedBytes();
    private readonly int _collections = GC.CollectionCount(0);

    private CpuSplit()
    {
    }

    public static CpuSplit Start() => new();

    public CpuUse Stop(int vms)
    {
        var process = (Process.GetCurrentProcess().TotalProcessorTime - _process).TotalMilliseconds;
        var machine = (MachineBusySeconds() - _machine) * 1000;
        vms = Math.Max(1, vms);
        return new CpuUse(process / vms, (machine - process) / vms, (GC.GetTotalAllocatedBytes() - _allocated) / 1024.0 / vms, GC.CollectionCount(0) - _collections);
    }

    /// <summary>Seconds of CPU the whole machine spent busy so far: all but idle and I/O wait, in clock ticks of 1/100 s.</summary>
    private static double MachineBusySeconds()
    {
        // "cpu  user nice system idle iowait irq softirq steal guest guest_nice": guest time is
        // counted in user and nice already, so the first eight add up to all the time there is.
        var ticks = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8).Select(long.Parse).ToArray();
        return (ticks.Sum() - ticks[3] - ticks[4]) / 100.0;
    }
}
