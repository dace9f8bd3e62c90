using System.Collections.Concurrent;
using System.Diagnostics;
using Cloud.Controller.Tests.Support;
using Cloud.Grpc;
using Cloud.ServiceDefaults;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;

namespace Cloud.Controller.Tests;

/// <summary>A trace started by the controller continues in the agent, across the gRPC call.</summary>
[Collection(CloudCollection.Name)]
public sealed class TracingTests(CloudFixture cloud)
{
    [Fact]
    public async Task The_agents_CreateVm_span_belongs_to_the_controllers_trace()
    {
        var spans = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == GrpcTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(listener);

        var (_, operation) = await cloud.Http.PostAsync("/v1/vms", """{"name":"traced","flavor":"m1.tiny"}""");
        Assert.Equal("SUCCEEDED", (await cloud.Http.WaitForOperationAsync(operation.Str("id"))).Str("state"));

        const string name = "cloud.agent.v1.NodeAgent/CreateVm";
        // Other tests' creates may overlap this one: every client span must have its server span.
        var clients = spans.Where(s => s.Kind == ActivityKind.Client && s.DisplayName == name).ToList();
        Assert.NotEmpty(clients);
        foreach (var client in clients)
        {
            var server = spans.Single(s => s.Kind == ActivityKind.Server && s.DisplayName == name && s.TraceId == client.TraceId);
            Assert.NotEqual(default, server.ParentSpanId);
        }
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData(" ", false)]
    [InlineData("http://127.0.0.1:4317", true)]
    public void Spans_are_recorded_only_when_there_is_somewhere_to_send_them(string? endpoint, bool recorded)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Telemetry:OtlpEndpoint"] = endpoint }).Build();
        using var services = new ServiceCollection().AddCloudTelemetry(configuration, "test").BuildServiceProvider();
        using var source = new ActivitySource(TelemetryExtensions.SourcePrefix + "Test");

        _ = services.GetService<TracerProvider>();
        using var span = source.StartActivity("placement");

        Assert.Equal(recorded, services.GetService<TracerProvider>() is not null);
        Assert.Equal(recorded, span is not null);
    }
}
