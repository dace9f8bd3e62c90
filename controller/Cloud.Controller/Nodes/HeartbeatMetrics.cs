using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Cloud.Controller.Scheduling;
using Cloud.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Nodes;

/// <summary>
/// Heartbeat lag (meter "Cloud.Nodes"): per node, the seconds since this replica last recorded a
/// heartbeat of it (an observable gauge, per node only while the cloud has at most
/// <see cref="TelemetryOptions.PerNodeSeriesMaxNodes"/> nodes, like the capacity gauges; the
/// largest lag is always reported), and for all nodes together the time between a node's two
/// consecutive heartbeats as the ledger recorded them (a histogram: its tail is the nodes
/// that are late, whichever replica they report to).
/// </summary>
/// <remarks>
/// A replica knows only the heartbeats it received: behind a load balancer that spreads agents'
/// connections, read the smallest lag over the replicas.
/// </remarks>
internal sealed class HeartbeatMetrics : IDisposable
{
    private readonly ConcurrentDictionary<Guid, long> _lastSeen = new();
    private readonly Meter _meter;
    private readonly Histogram<double> _interval;
    private readonly TimeProvider _time;
    private readonly CapacityView _view;
    private readonly int _perNodeMax;

    public HeartbeatMetrics(IMeterFactory meters, CapacityView view, TimeProvider time, IOptions<TelemetryOptions> telemetry)
    {
        _view = view;
        _time = time;
        _perNodeMax = telemetry.Value.PerNodeSeriesMaxNodes;
        _meter = meters.Create("Cloud.Nodes");
        _interval = _meter.CreateHistogram(
            "cloud.node.heartbeat.interval",
            unit: "s",
            description: "Time between two consecutive heartbeats of a node, as the ledger recorded them.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300] });
        _meter.CreateObservableGauge("cloud.node.heartbeat.lag", PerNode, unit: "s",
            description: "Seconds since this replica recorded the node's last heartbeat (per node only while the cloud has at most Telemetry:PerNodeSeriesMaxNodes nodes).");
        _meter.CreateObservableGauge("cloud.node.heartbeat.lag.max", Max, unit: "s",
            description: "The largest cloud.node.heartbeat.lag over the nodes this replica heard from.");
    }

    /// <summary>A fresh heartbeat of <paramref name="nodeId"/>, whose previous one the ledger recorded at <paramref name="previous"/>.</summary>
    public void Record(Guid nodeId, DateTimeOffset? previous)
    {
        _lastSeen[nodeId] = _time.GetTimestamp();
        if (previous is { } at)
        {
            _interval.Record(Math.Max(0, (_time.GetUtcNow() - at).TotalSeconds));
        }
    }

    private IEnumerable<Measurement<double>> PerNode()
    {
        if (_lastSeen.Count > _perNodeMax)
        {
            yield break;
        }
        foreach (var (nodeId, seen) in _lastSeen)
        {
            // Nodes the view no longer holds (deleted) are forgotten.
            if (_view.Find(nodeId) is not { } node)
            {
                _lastSeen.TryRemove(nodeId, out _);
                continue;
            }
            yield return new Measurement<double>(_time.GetElapsedTime(seen).TotalSeconds, new KeyValuePair<string, object?>("cloud.node.name", node.Name));
        }
    }

    private Measurement<double> Max()
    {
        var oldest = long.MaxValue;
        foreach (var (_, seen) in _lastSeen)
        {
            oldest = Math.Min(oldest, seen);
        }
        return new Measurement<double>(oldest == long.MaxValue ? 0 : _time.GetElapsedTime(oldest).TotalSeconds);
    }

    public void Dispose() => _meter.Dispose();
}
