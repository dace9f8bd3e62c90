using System.Diagnostics;
using System.Diagnostics.Metrics;
using Cloud.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Scheduling;

/// <summary>
/// The scheduler's metrics (meter "Cloud.Scheduler", beside its spans): placements and their
/// latency. Claim conflicts, the optimistic claim's retries, are the ledger's
/// (<c>cloud.ledger.claims.conflicts</c>, by reason).
/// </summary>
internal static class SchedulerTelemetry
{
    public const string Name = "Cloud.Scheduler";

    private static readonly Meter Meter = new(Name);

    /// <summary>VMs the scheduler was asked to place, by mode (single, batch) and outcome (placed, unplaced, error).</summary>
    public static readonly Counter<long> Placements = Meter.CreateCounter<long>(
        "cloud.scheduler.placements", unit: "{vm}", description: "VMs the scheduler was asked to place, by mode and outcome.");

    /// <summary>From the request to the committed claim (or the refusal), queueing for a group commit included.</summary>
    public static readonly Histogram<double> PlacementDuration = Meter.CreateHistogram(
        "cloud.scheduler.placement.duration",
        unit: "s",
        description: "Time to place one VM or one batch, until its claim committed or it was refused, by mode and outcome.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });

    public static void Record(string mode, string outcome, long vms, long startedTimestamp)
    {
        var tags = new TagList { { "cloud.placement.mode", mode }, { "cloud.placement.outcome", outcome } };
        if (vms > 0)
        {
            Placements.Add(vms, tags);
        }
        PlacementDuration.Record(Stopwatch.GetElapsedTime(startedTimestamp).TotalSeconds, tags);
    }
}

/// <summary>
/// Capacity as the scheduler's in-memory view has it, read when metrics are collected (a scrape):
/// used and total (floor((total - reserved) * ratio), what the scheduler hands out) per resource
/// class for the whole cloud, and per node while the cloud has at most
/// <see cref="TelemetryOptions.PerNodeSeriesMaxNodes"/> nodes.
/// </summary>
/// <remarks>
/// Cardinality: per-node series are 3 per node and instrument (VCPU, MEMORY_MB, DISK_GB); at
/// 10,000 simulated nodes that is 60,000 series per replica, past OpenTelemetry's 2,000 per
/// instrument and most of every scrape. Above the limit per-node series stop altogether rather
/// than show an arbitrary subset; the cloud-wide series and the node list
/// (GET /v1/nodes) remain. The amounts are in the resource class's own unit (vCPUs, MiB, GiB),
/// hence the unit annotation "{amount}". The meter comes from the container's IMeterFactory, so
/// that the callbacks go away with the controller that owns the view.
/// </remarks>
internal sealed class CapacityMetrics : IHostedService, IDisposable
{
    private readonly Meter _meter;
    private readonly CapacityView _view;
    private readonly int _perNodeMax;

    public CapacityMetrics(IMeterFactory meters, CapacityView view, IOptions<TelemetryOptions> telemetry)
    {
        _view = view;
        _perNodeMax = telemetry.Value.PerNodeSeriesMaxNodes;
        _meter = meters.Create(SchedulerTelemetry.Name);
        _meter.CreateObservableGauge("cloud.capacity.usage", () => Cloud(used: true), unit: "{amount}",
            description: "Capacity claimed in the whole cloud, per resource class (vCPUs, MiB, GiB), as this replica's scheduler sees it.");
        _meter.CreateObservableGauge("cloud.capacity.limit", () => Cloud(used: false), unit: "{amount}",
            description: "Capacity the scheduler may hand out in the whole cloud, per resource class: floor((total - reserved) * allocation ratio) summed over the nodes.");
        _meter.CreateObservableGauge("cloud.node.capacity.usage", () => PerNode(used: true), unit: "{amount}",
            description: "Capacity claimed on each node, per resource class (only while the cloud has at most Telemetry:PerNodeSeriesMaxNodes nodes).");
        _meter.CreateObservableGauge("cloud.node.capacity.limit", () => PerNode(used: false), unit: "{amount}",
            description: "Capacity the scheduler may hand out on each node, per resource class (only while the cloud has at most Telemetry:PerNodeSeriesMaxNodes nodes).");
        _meter.CreateObservableGauge("cloud.nodes", Nodes, unit: "{node}",
            description: "Nodes known to the scheduler, by state (UP, DOWN, ...) and whether they take new VMs.");
    }

    private IEnumerable<Measurement<long>> Cloud(bool used)
    {
        var sums = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var node in _view.Nodes)
        {
            foreach (var (resourceClass, amount) in Amounts(node, used))
            {
                sums[resourceClass] = sums.GetValueOrDefault(resourceClass) + amount;
            }
        }
        return sums.Select(s => new Measurement<long>(s.Value, new KeyValuePair<string, object?>("cloud.resource_class", s.Key)));
    }

    private IEnumerable<Measurement<long>> PerNode(bool used)
    {
        var nodes = _view.Nodes;
        if (nodes.Count > _perNodeMax)
        {
            yield break;
        }
        foreach (var node in nodes)
        {
            foreach (var (resourceClass, amount) in Amounts(node, used))
            {
                yield return new Measurement<long>(amount,
                    new KeyValuePair<string, object?>("cloud.node.name", node.Name), new KeyValuePair<string, object?>("cloud.resource_class", resourceClass));
            }
        }
    }

    private IEnumerable<Measurement<long>> Nodes()
        => _view.Nodes.GroupBy(n => (n.State, n.Schedulable)).Select(g => new Measurement<long>(g.Count(),
            new KeyValuePair<string, object?>("cloud.node.state", g.Key.State), new KeyValuePair<string, object?>("cloud.node.schedulable", g.Key.Schedulable)));

    private static IEnumerable<KeyValuePair<string, long>> Amounts(Data.NodeCapacity node, bool used)
        => used
            ? node.Inventories.Keys.Select(c => new KeyValuePair<string, long>(c, node.Used.GetValueOrDefault(c)))
            : node.Inventories.Select(i => new KeyValuePair<string, long>(i.Key, i.Value.Capacity));

    // A hosted service only so that the host creates it (and its gauges) at start.
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _meter.Dispose();
}
