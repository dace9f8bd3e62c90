using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Cloud.Scheduler.Benchmarks;

/// <summary>
/// Where a benchmark's time goes (<c>--profile</c>): listens to the scheduler's, the ledger's and
/// Npgsql's spans and sums their durations by name, so that a run says how much of a placed
/// VM is deciding, claiming, waiting for PostgreSQL and committing. Npgsql's spans are named
/// after the statement's first words, which is enough to tell the claim's batch from a commit.
/// For spans seen often enough, the 99th percentile of one span's duration says which step the
/// slowest requests were slow in.
/// </summary>
internal sealed class SpanProfile : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentDictionary<string, Totals> _totals = new(StringComparer.Ordinal);

    private sealed class Totals
    {
        public long Count;
        public long Ticks;
        public ConcurrentQueue<long> Durations { get; } = new();
    }

    /// <summary>Spans fewer than this say nothing of a 99th percentile.</summary>
    private const int PercentileMinimum = 200;

    public SpanProfile()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is "Cloud.Scheduler" or "Cloud.Ledger" or "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                var name = activity.Source.Name == "Npgsql"
                    ? "sql " + Shorten(activity.GetTagItem("db.query.text") as string ?? activity.GetTagItem("db.statement") as string ?? activity.DisplayName)
                    : activity.OperationName;
                var totals = _totals.GetOrAdd(name, _ => new Totals());
                Interlocked.Increment(ref totals.Count);
                Interlocked.Add(ref totals.Ticks, activity.Duration.Ticks);
                totals.Durations.Enqueue(activity.Duration.Ticks);
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    private static string Shorten(string statement)
    {
        var words = statement.Split([' ', '\n', '\r', '\t', ';'], 4, StringSplitOptions.RemoveEmptyEntries);
        return string.Join('_', words.Take(3)).ToLowerInvariant();
    }

    /// <summary>Prints, per span name, its count and its total time per placed VM, then starts over.</summary>
    public void Report(string prefix, long vms)
    {
        foreach (var (name, totals) in _totals.OrderByDescending(t => t.Value.Ticks))
        {
            var key = new string([.. name.Select(c => char.IsLetterOrDigit(c) ? c : '_')]);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{prefix}_profile_{key}: {TimeSpan.FromTicks(totals.Ticks).TotalMilliseconds / Math.Max(1, vms):0.###} ms/VM ({totals.Count} spans)"));
            if (totals.Durations.Count >= PercentileMinimum)
            {
                var sorted = totals.Durations.Order().ToArray();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{prefix}_profile_{key}_p99: {TimeSpan.FromTicks(sorted[(int)(sorted.Length * 0.99)]).TotalMilliseconds:0.###} ms"));
            }
        }
        _totals.Clear();
    }

    public void Dispose() => _listener.Dispose();
}
