using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Cloud.Controller.Operations;

/// <summary>
/// The operations' spans and metrics, both named "Cloud.Operations". An operation runs after
/// the request that started it has been answered, perhaps on another replica: the request's
/// trace context is stored with the operation (<c>operations.trace_parent</c>), and the run's
/// span ("operation &lt;kind&gt;") is its child, so the request and everything the operation did
/// form one trace.
/// </summary>
internal static class OperationTelemetry
{
    public const string Name = "Cloud.Operations";

    public static readonly ActivitySource Source = new(Name);

    private static readonly Meter Meter = new(Name);

    /// <summary>One run of an operation by this replica, by kind and outcome; its count is the number of runs.</summary>
    public static readonly Histogram<double> RunDuration = Meter.CreateHistogram(
        "cloud.operation.duration",
        unit: "s",
        description: "Time a replica spent running an operation, by kind and outcome (succeeded, failed, unfinished: left for a later run, error: stopped by an unexpected error and retried when its lease expires; interrupted: the replica stopped).",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300] });

    /// <summary>Operations this replica is running now.</summary>
    public static readonly UpDownCounter<long> Running = Meter.CreateUpDownCounter<long>(
        "cloud.operation.active", unit: "{operation}", description: "Operations this replica is running now, by kind.");

    /// <summary>The current span's W3C traceparent, to store with an operation; null when nothing is traced.</summary>
    public static string? CurrentTraceParent()
        => Activity.Current is { IdFormat: ActivityIdFormat.W3C } current ? current.Id : null;

    /// <summary>The stored traceparent as a parent context; default (a new trace) when absent or unreadable.</summary>
    public static ActivityContext ParentOf(string? traceParent)
        => traceParent is not null && ActivityContext.TryParse(traceParent, null, isRemote: true, out var parent) ? parent : default;
}
