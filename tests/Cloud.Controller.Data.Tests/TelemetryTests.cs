using System.Diagnostics;
using System.Diagnostics.Metrics;
using Cloud.Controller.Data.Tests.Support;

namespace Cloud.Controller.Data.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TelemetryCollection
{
    public const string Name = "telemetry";
}

/// <summary>Alone in its collection, so that the process-wide meter sees only this test's claims.</summary>
[Collection(TelemetryCollection.Name)]
public sealed class TelemetryTests : IAsyncLifetime
{
    private LedgerDatabase _db = null!;

    public async Task InitializeAsync() => _db = await LedgerDatabase.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    [Fact]
    public async Task TryClaim_CommittedAndRefused_RecordSpansCountersAndDurations()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 2);
        using var testSource = new ActivitySource("Cloud.Ledger.Tests");
        var spans = new List<Activity>();
        using var activities = new ActivityListener
        {
            ShouldListenTo = s => s.Name is "Cloud.Ledger" or "Cloud.Ledger.Tests",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                lock (spans)
                {
                    spans.Add(a);
                }
            },
        };
        ActivitySource.AddActivityListener(activities);
        var measurements = new List<(string Instrument, double Value, string Tags)>();
        using var meters = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == "Cloud.Ledger")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        meters.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        meters.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        meters.Start();

        using (var parent = testSource.StartActivity("test"))
        {
            Assert.True((await _db.Ledger.TryClaimAsync(
                [LedgerDatabase.ClaimFor(Guid.NewGuid(), node, 0, 1, 512), LedgerDatabase.ClaimFor(Guid.NewGuid(), node, 0, 1, 512)], null, CancellationToken.None)).Succeeded);
            Assert.False((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, 0, 1, 512)], null, CancellationToken.None)).Succeeded);
            await _db.Ledger.LoadAsync(CancellationToken.None);
        }

        var traceId = spans.Single(s => s.OperationName == "test").TraceId;
        var mine = spans.Where(s => s.TraceId == traceId && s.Source.Name == "Cloud.Ledger").ToList();
        Assert.Equal(["ledger.claim", "ledger.claim", "ledger.load"], mine.Select(s => s.OperationName));
        Assert.Equal("committed", mine[0].GetTagItem("cloud.ledger.outcome"));
        Assert.Equal("conflict", mine[1].GetTagItem("cloud.ledger.outcome"));
        Assert.Equal("StaleGeneration", mine[1].GetTagItem("cloud.ledger.conflict_reason"));
        lock (measurements)
        {
            Assert.Contains(("cloud.ledger.claims.committed", 2.0, ""), measurements);
            Assert.Contains(("cloud.ledger.claims.conflicts", 1.0, "reason=StaleGeneration"), measurements);
            Assert.Equal(["outcome=committed", "outcome=conflict"],
                measurements.Where(m => m.Instrument == "cloud.ledger.claim.duration").Select(m => m.Tags));
        }

        void Record<T>(Instrument instrument, T value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
            where T : struct
        {
            var text = string.Join(",", tags.ToArray().Select(t => $"{t.Key}={t.Value}"));
            lock (measurements)
            {
                measurements.Add((instrument.Name, Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture), text));
            }
        }
    }
}
