using System.Diagnostics;

namespace Cloud.Scheduler.Benchmarks;

/// <summary>
/// Where the machine's CPU went during a phase: this process (controllers and load) against
/// everything else (PostgreSQL, on a quiet host), from /proc/stat.
/// </summary>
internal sealed class CpuSplit
{
    private readonly TimeSpan _ownStart;
    private readonly double _machineStart;

    private CpuSplit(TimeSpan own, double machine) => (_ownStart, _machineStart) = (own, machine);

    public static CpuSplit Start() => new(Process.GetCurrentProcess().TotalProcessorTime, MachineBusySeconds());

    public (double OwnMs, double OtherMs) Stop(int items)
    {
        var own = (Process.GetCurrentProcess().TotalProcessorTime - _ownStart).TotalMilliseconds;
        var machine = (MachineBusySeconds() - _machineStart) * 1000;
        return (own / items, (machine - own) / items);
    }

    public void Report(int items)
    {
        var (own, other) = Stop(items);
        Console.Error.WriteLine($"cpu per item: own {own:F3} ms, other {other:F3} ms");
    }

    private static double MachineBusySeconds()
    {
        // cpu  user nice system idle iowait irq softirq steal ...
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var ticks = fields.Skip(1).Select(long.Parse).ToArray();
        var busy = ticks.Sum() - ticks[3] - ticks[4];
        return busy / 100.0;
    }
}
