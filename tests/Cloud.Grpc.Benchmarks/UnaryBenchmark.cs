using System.Diagnostics;

namespace Cloud.Grpc.Benchmarks;

/// <summary>
/// Unary round trips on one channel: GetNodeInfo, whose answer the fake backend builds in memory,
/// so the time is the gRPC stack's (client, HTTP/2 on loopback, Kestrel, the service binding)
/// and protobuf's. First one caller, one call at a time (latency); then several callers at once
/// sharing the channel, as the controller's per-node client is shared (throughput). The calls are
/// made in rounds; calls/s is the median of the rounds' rates, so that a burst of other work on
/// the machine moves it less; the latencies are those of every call.
/// </summary>
internal static class UnaryBenchmark
{
    public static async Task RunAsync(AgentClient client, BenchmarkOptions options, Reporter report, CancellationToken cancellationToken)
    {
        for (var i = 0; i < options.Warmup; i++)
        {
            await client.GetNodeInfoAsync(cancellationToken);
        }
        var latencies = new long[options.Calls];
        var rates = new List<double>();
        foreach (var (from, to) in Rounds(options.Calls, options.Rounds))
        {
            var started = Stopwatch.GetTimestamp();
            for (var i = from; i < to; i++)
            {
                var t0 = Stopwatch.GetTimestamp();
                await client.GetNodeInfoAsync(cancellationToken);
                latencies[i] = Stopwatch.GetTimestamp() - t0;
            }
            rates.Add((to - from) / Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
        Summarize("grpc.unary", latencies, rates, report);

        await Concurrently(client, options.Callers, new long[options.Warmup], cancellationToken);
        rates.Clear();
        var concurrent = new List<long>();
        foreach (var (from, to) in Rounds(options.Calls, options.Rounds))
        {
            var round = new long[to - from];
            rates.Add(round.Length / (await Concurrently(client, options.Callers, round, cancellationToken)).TotalSeconds);
            concurrent.AddRange(round);
        }
        Summarize($"grpc.unary_{options.Callers}_callers", [.. concurrent], rates, report);
    }

    /// <summary>[from, to) of each of <paramref name="rounds"/> near-equal rounds of <paramref name="calls"/>.</summary>
    private static IEnumerable<(int From, int To)> Rounds(int calls, int rounds)
    {
        rounds = Math.Min(rounds, calls);
        for (var r = 0; r < rounds; r++)
        {
            yield return ((int)((long)calls * r / rounds), (int)((long)calls * (r + 1) / rounds));
        }
    }

    /// <summary>Makes latencies.Length calls, split among <paramref name="callers"/> loops on the thread pool; the wall time.</summary>
    private static async Task<TimeSpan> Concurrently(AgentClient client, int callers, long[] latencies, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(c => Task.Run(async () =>
        {
            for (var i = c; i < latencies.Length; i += callers)
            {
                var t0 = Stopwatch.GetTimestamp();
                await client.GetNodeInfoAsync(cancellationToken);
                latencies[i] = Stopwatch.GetTimestamp() - t0;
            }
        }, cancellationToken)));
        return Stopwatch.GetElapsedTime(started);
    }

    private static void Summarize(string metric, long[] latencies, List<double> roundRates, Reporter report)
    {
        var sorted = latencies.Order().ToArray();
        report.Add(metric + ".p50", Percentiles.Of(sorted, 0.50), "us");
        report.Add(metric + ".p99", Percentiles.Of(sorted, 0.99), "us");
        report.Add(metric + ".mean", Percentiles.Mean(sorted), "us");
        report.Add(metric + ".calls_per_s", Percentiles.Median(roundRates), "calls/s");
    }
}
