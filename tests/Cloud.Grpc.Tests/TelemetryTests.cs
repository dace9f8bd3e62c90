using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Cloud.Grpc.Tests.Echo;
using Cloud.Grpc.Tests.Support;

namespace Cloud.Grpc.Tests;

public sealed class TelemetryTests(EchoServerFixture fixture) : IClassFixture<EchoServerFixture>, IDisposable
{
    private static readonly ActivitySource TestSource = new("Cloud.Grpc.Tests");

    private readonly ConcurrentQueue<Activity> _activities = new();
    private readonly ConcurrentQueue<(string Instrument, double Value, Dictionary<string, object?> Tags)> _measurements = new();
    private readonly ActivityListener _activityListener = new();
    private readonly MeterListener _meterListener = new();

    private GrpcTestServer Server => fixture.Server;

    private void Listen()
    {
        _activityListener.ShouldListenTo = s => s.Name is GrpcTelemetry.ActivitySourceName or "Cloud.Grpc.Tests";
        _activityListener.Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded;
        _activityListener.ActivityStopped = _activities.Enqueue;
        ActivitySource.AddActivityListener(_activityListener);

        _meterListener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == GrpcTelemetry.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _meterListener.SetMeasurementEventCallback<double>((instrument, value, tags, _) =>
            _measurements.Enqueue((instrument.Name, value, tags.ToArray().ToDictionary(t => t.Key, t => t.Value))));
        _meterListener.Start();
    }

    public void Dispose()
    {
        _activityListener.Dispose();
        _meterListener.Dispose();
    }

    [Fact]
    public async Task Call_PropagatesTraceContextAndRecordsSpans()
    {
        Listen();
        using var channel = GrpcChannel.ForAddress(Server.Address);
        ActivityTraceId traceId;
        using (var parent = TestSource.StartActivity("test-parent"))
        {
            Assert.NotNull(parent);
            traceId = parent.TraceId;
            await channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Message = "traced" }, default);
            Assert.Same(parent, Activity.Current);
        }

        var seen = await Server.Probe.WhenReported("traced");
        Assert.Equal(traceId.ToString(), seen.TraceId);
        Assert.Equal(GrpcTelemetry.ActivitySourceName, seen.ActivitySource);

        var spans = _activities.Where(a => a.TraceId == traceId && a.Source.Name == GrpcTelemetry.ActivitySourceName).ToList();
        var client = Assert.Single(spans, a => a.Kind == ActivityKind.Client);
        var server = Assert.Single(spans, a => a.Kind == ActivityKind.Server);
        Assert.Equal("echo.v1.Echo/Unary", client.DisplayName);
        foreach (var span in new[] { client, server })
        {
            Assert.Equal("grpc", span.GetTagItem("rpc.system"));
            Assert.Equal("echo.v1.Echo", span.GetTagItem("rpc.service"));
            Assert.Equal("Unary", span.GetTagItem("rpc.method"));
            Assert.Equal(0, span.GetTagItem("rpc.grpc.status_code"));
        }
        // The server span descends from the client span through traceparent.
        Assert.NotEqual(default, server.ParentSpanId);
        Assert.NotEqual(server.SpanId, client.SpanId);
    }

    [Fact]
    public async Task Call_RecordsDurationHistogramsOnBothSides()
    {
        Listen();
        using var channel = GrpcChannel.ForAddress(Server.Address);
        // DATA_LOSS is used by no other test, so these measurements are this test's own.
        await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Fail, new EchoRequest { FailCode = (int)StatusCode.DataLoss, FailMessage = "m" }, default));

        // The server records just after it sends the status: poll briefly for it.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!_measurements.Any(m => Is(GrpcTelemetry.ServerCallDuration)(m)) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }
        var client = Assert.Single(_measurements, Is(GrpcTelemetry.ClientCallDuration));
        Assert.Single(_measurements, Is(GrpcTelemetry.ServerCallDuration));
        Assert.InRange(client.Value, 0, 10);

        static Predicate<(string Instrument, double Value, Dictionary<string, object?> Tags)> Is(string instrument)
            => m => m.Instrument == instrument
                    && Equals(m.Tags["rpc.grpc.status_code"], (int)StatusCode.DataLoss)
                    && Equals(m.Tags["rpc.method"], "Fail")
                    && Equals(m.Tags["rpc.system"], "grpc");
    }
}
