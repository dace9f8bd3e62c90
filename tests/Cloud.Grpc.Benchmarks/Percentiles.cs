using System.Diagnostics;

namespace Cloud.Grpc.Benchmarks;

/// <summary>Latency summaries of Stopwatch timestamps (nearest rank), and the median of rates.</summary>
internal static class Percentiles
{
    public static double Micros(long ticks) => ticks * 1_000_000.0 / Stopwatch.Frequency;

    /// <summary>The q-quantile (0..1] of <paramref name="sorted"/>, an ascending array, in microseconds.</summary>
    public static double Of(long[] sorted, double q)
        => Micros(sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)]);

    public static double Mean(long[] ticks) => Micros(ticks.Sum()) / ticks.Length;

    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
