namespace Cloud.Agent.Qemu.Benchmarks;

/// <summary>Picks the benchmarks named on the command line and prints their figures as "metric: value unit".</summary>
internal static class BenchmarkRunner
{
    private static readonly Dictionary<string, Func<CancellationToken, Task>> Benchmarks = new(StringComparer.Ordinal)
    {
        ["create"] = CreateBenchmark.RunAsync,
        ["migrate"] = MigrateBenchmark.RunAsync,
        ["snapshot-migrate"] = SnapshotMigrateBenchmark.RunAsync,
        ["memory"] = MemoryBenchmark.RunAsync,
        ["migrate-tls"] = MigrateTlsBenchmark.RunAsync,
    };

    public static async Task<int> RunAsync(string[] args)
    {
        var names = args.Length == 0 || args.Contains("all", StringComparer.Ordinal) ? [.. Benchmarks.Keys] : args;
        var unknown = names.Where(n => !Benchmarks.ContainsKey(n)).ToList();
        if (unknown.Count > 0)
        {
            await Console.Error.WriteLineAsync($"Unknown benchmark {string.Join(", ", unknown)}; use {string.Join(", ", Benchmarks.Keys)} or all.");
            return 2;
        }
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        foreach (var name in names)
        {
            await Console.Error.WriteLineAsync($"# {name}");
            await Benchmarks[name](cancel.Token);
        }
        return 0;
    }

    public static void Report(string metric, double value, string unit)
        => Console.WriteLine(FormattableString.Invariant($"{metric}: {value:0.###} {unit}"));

    /// <summary>
    /// Medians of both sides, and the median of the per-run ratios: each run times the agent and
    /// the baseline back to back, so load from other processes on the machine hits both alike.
    /// </summary>
    public static void ReportPairs(string metric, string baseline, IReadOnlyList<double> agent, IReadOnlyList<double> bare)
    {
        Report($"{metric}_agent_median", Median(agent), "ms");
        Report($"{metric}_{baseline}_median", Median(bare), "ms");
        Report($"{metric}_ratio", Median([.. agent.Zip(bare, (a, b) => a / b)]), "x");
    }

    /// <summary>The nearest-rank percentile <paramref name="p"/> (0-100) of the values.</summary>
    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        var sorted = values.Order().ToList();
        var rank = (int)Math.Ceiling(p / 100 * sorted.Count);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Count - 1)];
    }

    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
