using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Cloud.Qmp;

/// <summary>
/// The QMP client's spans and metrics, both named "Cloud.Qmp": one span per command
/// ("qmp &lt;command&gt;", a client span under whatever the caller is doing) and the commands'
/// latency by command name. Command names are QEMU's schema (a few dozen), so the histogram's
/// cardinality is bounded.
/// </summary>
public static class QmpTelemetry
{
    public const string Name = "Cloud.Qmp";

    internal static readonly ActivitySource Source = new(Name);

    private static readonly Meter Meter = new(Name);

    internal static readonly Histogram<double> CommandDuration = Meter.CreateHistogram(
        "cloud.qmp.command.duration",
        unit: "s",
        description: "Time from sending a QMP command to its reply, by command and, when it failed, error type.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });

    /// <summary>What went wrong, in the words of the error.type attribute: QEMU's error class, or the client's failure.</summary>
    internal static string ErrorType(Exception e) => e switch
    {
        QmpCommandException c => c.ErrorClass,
        QmpTimeoutException => "timeout",
        QmpDisconnectedException => "disconnected",
        QmpProtocolException => "protocol",
        OperationCanceledException => "cancelled",
        _ => e.GetType().Name,
    };
}
