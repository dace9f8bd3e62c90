using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Cloud.Scheduler.Benchmarks;

/// <summary>What an open loop measured: each request's latency from the moment it was due, sorted, and how late the loop issued them.</summary>
internal sealed record OpenLoopResult(double[] Latencies, double[] IssueLags, double Seconds, int Errors);

/// <summary>
/// Offers requests on a fixed schedule, whatever the ones before took (an open loop, so queueing
/// counts), and times each from the moment it was due.
/// </summary>
/// <remarks>
/// The schedule is kept by a thread of its own that sleeps to each due time on the monotonic
/// clock. <see cref="Task.Delay(TimeSpan)"/> counts whole milliseconds and fires from the timer
/// thread, so a loop built on it issued requests about 1 ms late at the median and 4 ms at the
/// 99th percentile, which the latencies then counted. The lag that is left is printed with the
/// latencies. Each request starts on the thread pool, as a request to the controller's API does.
/// </remarks>
internal static partial class OpenLoop
{
    private const int ClockMonotonic = 1;
    private const int TimerAbsolute = 1;

    public static async Task<OpenLoopResult> RunAsync(int rate, int count, Func<int, Task<bool>> request, CancellationToken cancellationToken)
    {
        var latencies = new double[count];
        var lags = new double[count];
        var tasks = new Task[count];
        var errors = 0;
        var issued = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = Stopwatch.GetTimestamp();
        var issuer = new Thread(() =>
        {
            try
            {
                Issue();
                issued.SetResult();
            }
            catch (Exception e)
            {
                issued.SetException(e);
            }
        })
        { IsBackground = true, Name = "open loop" };
        issuer.Start();
        await issued.Task;
        await Task.WhenAll(tasks.Where(task => task is not null));
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        Array.Sort(latencies);
        Array.Sort(lags);
        return new OpenLoopResult(latencies, lags, seconds, errors);

        void Issue()
        {
            for (var i = 0; i < count && !cancellationToken.IsCancellationRequested; i++)
            {
                var due = started + (long)((double)i / rate * Stopwatch.Frequency);
                SleepUntil(due);
                lags[i] = Stopwatch.GetElapsedTime(due).TotalMilliseconds;
                var index = i;
                tasks[i] = Task.Run(async () =>
                {
                    if (!await request(index).ConfigureAwait(false))
                    {
                        Interlocked.Increment(ref errors);
                    }
                    latencies[index] = Stopwatch.GetElapsedTime(due).TotalMilliseconds;
                }, cancellationToken);
            }
        }
    }

    /// <summary>Sleeps until a <see cref="Stopwatch"/> timestamp: on Linux to within the kernel's timer slack (50 µs), elsewhere to the millisecond.</summary>
    private static void SleepUntil(long timestamp)
    {
        if (OperatingSystem.IsLinux() && Stopwatch.Frequency == 1_000_000_000)
        {
            // Stopwatch reads CLOCK_MONOTONIC in nanoseconds on Linux, so its timestamp is the
            // absolute deadline clock_nanosleep takes. EINTR (a signal) just sleeps again.
            var deadline = new TimeSpec { Seconds = timestamp / 1_000_000_000, Nanoseconds = timestamp % 1_000_000_000 };
            while (ClockNanosleep(ClockMonotonic, TimerAbsolute, in deadline, IntPtr.Zero) != 0 && Stopwatch.GetTimestamp() < timestamp)
            {
            }
            return;
        }
        var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), timestamp);
        if (wait > TimeSpan.Zero)
        {
            Thread.Sleep(wait);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_nanosleep")]
    private static partial int ClockNanosleep(int clock, int flags, in TimeSpec deadline, IntPtr remaining);
}
