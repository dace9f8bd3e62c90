using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Cloud.Agent;
using Cloud.Controller.Tests.Support;
using Cloud.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Xunit.Abstractions;

namespace Cloud.Controller.Tests;

/// <summary>
/// One trace per request, from the REST call to each QMP command, and the Prometheus scrape
/// listener with its token, on a QEMU cloud of its own. Other collections run at the same time in
/// this process: spans are told apart by the trace id of this test's request.
/// </summary>
[Collection(TelemetryCloudCollection.Name)]
public sealed class TelemetryTests(TelemetryCloudFixture cloud, ITestOutputHelper output)
{
    [Fact]
    public async Task A_VM_create_is_one_trace_from_the_REST_call_down_to_each_QMP_command()
    {
        var spans = new List<Activity>();
        using var testSource = new ActivitySource("Cloud.Tests.Telemetry");
        var tracer = Sdk.CreateTracerProviderBuilder()
            .AddSource(testSource.Name)
            .AddCloudInstrumentation()
            .AddNpgsql()
            .AddInMemoryExporter(spans)
            .Build()!;
        ActivityTraceId traceId;
        string operationId;
        try
        {
            using (var request = testSource.StartActivity("test: POST /v1/vms"))
            {
                Assert.NotNull(request);
                traceId = request.TraceId;
                var (status, operation) = await cloud.Http.PostAsync("/v1/vms", """{"name":"traced","flavor":"m1.tiny"}""");
                Assert.Equal(HttpStatusCode.Accepted, status);
                operationId = operation.Str("id");
            }
            Assert.Equal("SUCCEEDED", (await cloud.Http.WaitForOperationAsync(operationId)).Str("state"));
            // The operation's row is written before its span ends: wait for the span, not the row.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (!Snapshot(spans).Any(s => s.TraceId == traceId && s.Source.Name == "Cloud.Operations"))
            {
                Assert.True(DateTime.UtcNow < deadline, "The operation's span never ended.");
                await Task.Delay(20);
            }
            tracer.ForceFlush();
        }
        finally
        {
            tracer.Dispose();
        }

        var trace = Snapshot(spans).Where(s => s.TraceId == traceId).ToList();
        var byId = trace.ToDictionary(s => s.SpanId);
        string Describe() => string.Join("\n", trace.Select(s => $"{s.Source.Name} {s.Kind} '{s.DisplayName}' {s.SpanId} <- {s.ParentSpanId}"));
        bool Under(Activity span, Activity ancestor)
        {
            for (var at = span; byId.TryGetValue(at.ParentSpanId, out var parent); at = parent)
            {
                if (parent == ancestor)
                {
                    return true;
                }
            }
            return false;
        }
        Activity One(Func<Activity, bool> match, string what)
            => trace.SingleOrDefault(match) ?? throw new Xunit.Sdk.XunitException($"No single {what} in the trace:\n{Describe()}");

        output.WriteLine(Describe());
        var root = One(s => s.Source.Name == "Cloud.Tests.Telemetry", "test span");
        var api = One(s => s.Source.Name == "Microsoft.AspNetCore" && s.Kind == ActivityKind.Server && s.DisplayName.StartsWith("POST", StringComparison.Ordinal)
            && s.DisplayName.EndsWith("v1/vms", StringComparison.Ordinal), "API span");
        Assert.True(Under(api, root), Describe());

        var run = One(s => s.Source.Name == "Cloud.Operations" && s.DisplayName == "operation vm.create", "operation span");
        Assert.Equal(api.SpanId, run.ParentSpanId);
        Assert.Equal(operationId, run.GetTagItem("cloud.operation.id")?.ToString());
        Assert.Equal("succeeded", run.GetTagItem("cloud.operation.outcome"));

        var schedule = One(s => s.Source.Name == "Cloud.Scheduler" && s.DisplayName == "schedule", "scheduler span");
        Assert.Equal(run.SpanId, schedule.ParentSpanId);
        var claim = One(s => s.Source.Name == "Cloud.Ledger" && s.DisplayName == "ledger.claim", "ledger claim span");
        Assert.True(Under(claim, schedule), Describe());
        Assert.Contains(trace, s => s.Source.Name == "Npgsql" && s.Kind == ActivityKind.Client && Under(s, claim));

        var client = One(s => s.Kind == ActivityKind.Client && s.DisplayName.Contains("NodeAgent/CreateVm", StringComparison.Ordinal), "agent client span");
        Assert.True(Under(client, run), Describe());
        Assert.False(Under(client, schedule), Describe());
        var server = One(s => s.Source.Name == "Microsoft.AspNetCore" && s.Kind == ActivityKind.Server && s.ParentSpanId == client.SpanId, "agent server span");
        Assert.Equal(ActivityKind.Server, server.Kind);

        var qmp = trace.Where(s => s.Source.Name == "Cloud.Qmp").ToList();
        Assert.NotEmpty(qmp);
        Assert.All(qmp, s =>
        {
            Assert.True(Under(s, server), Describe());
            Assert.Equal("qmp " + s.GetTagItem("rpc.method"), s.DisplayName);
            Assert.Equal(ActivityKind.Client, s.Kind);
        });
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData(" ", false)]
    [InlineData("http://127.0.0.1:4317", true)]
    public void Spans_are_recorded_only_when_there_is_somewhere_to_send_them(string? endpoint, bool recorded)
    {
        // In this collection, so that no other test's tracer listens at the same time.
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Telemetry:OtlpEndpoint"] = endpoint }).Build();
        var services = new ServiceCollection();
        services.AddCloudTelemetry(configuration, "test");
        using var provider = services.BuildServiceProvider();
        using var source = new ActivitySource(TelemetryExtensions.SourcePrefix + "Test");

        var tracer = provider.GetService<TracerProvider>();
        using var span = source.StartActivity("placement");

        Assert.Equal(recorded, tracer is not null);
        Assert.Equal(recorded, span is not null);
    }

    [Fact]
    public async Task Metrics_answer_only_with_the_scrape_token_and_only_on_their_own_listener()
    {
        foreach (var url in (Uri[])[cloud.ControllerMetricsUrl, .. cloud.AgentMetricsUrls])
        {
            using var http = new HttpClient { BaseAddress = url };
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(http, "/metrics", null));
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(http, "/metrics", new AuthenticationHeaderValue("Bearer", "not-the-token")));
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(http, "/metrics", new AuthenticationHeaderValue("Bearer", TelemetryCloudFixture.ScrapeToken + "x")));
            // The token's hash is not the token.
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(http, "/metrics", new AuthenticationHeaderValue("Bearer", TelemetryCloudFixture.ScrapeTokenSha256)));
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(http, "/metrics", new AuthenticationHeaderValue("Basic", Convert.ToBase64String("a:b"u8))));
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(http, "/metrics", new AuthenticationHeaderValue("Bearer", TelemetryCloudFixture.ScrapeToken)));
            // Nothing else of the process answers there, with or without the token.
            Assert.Equal(HttpStatusCode.NotFound, await StatusAsync(http, "/v1/vms", new AuthenticationHeaderValue("Bearer", CloudFixture.OperatorToken)));
            Assert.Equal(HttpStatusCode.NotFound, await StatusAsync(http, "/healthz", null));
        }
        // And /metrics is not served on the REST listener.
        Assert.Equal(HttpStatusCode.NotFound, await StatusAsync(cloud.Http, "/metrics", new AuthenticationHeaderValue("Bearer", TelemetryCloudFixture.ScrapeToken)));
    }

    [Fact]
    public async Task A_metrics_listener_on_a_non_loopback_address_without_a_token_hash_refuses_to_start()
    {
        await using var agent = NewAgent(new() { ["Telemetry:MetricsListen"] = $"0.0.0.0:{Ports.Free(IPAddress.Any)}" });
        var refused = await Assert.ThrowsAsync<OptionsValidationException>(() => agent.StartAsync());
        Assert.Contains("Telemetry:MetricsListen '0.0.0.0:", refused.Message, StringComparison.Ordinal);
        Assert.Contains("Telemetry:MetricsTokenSha256 is not set", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("127.0.0.1", "abc", "Telemetry:MetricsTokenSha256 must be 64 hexadecimal characters")]
    [InlineData("localhost", null, "must be an IP address and port")]
    public async Task A_malformed_metrics_setting_refuses_to_start(string host, string? hash, string message)
    {
        await using var agent = NewAgent(new()
        {
            ["Telemetry:MetricsListen"] = $"{host}:{Ports.Free(IPAddress.Loopback)}",
            ["Telemetry:MetricsTokenSha256"] = hash,
        });
        var refused = await Assert.ThrowsAsync<OptionsValidationException>(() => agent.StartAsync());
        Assert.Contains(message, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_loopback_metrics_listener_without_a_token_hash_serves_anyone_on_the_host()
    {
        var port = Ports.Free(IPAddress.Loopback);
        await using var agent = NewAgent(new() { ["Telemetry:MetricsListen"] = $"127.0.0.1:{port}" });
        await agent.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(http, "/metrics", null));
        }
        finally
        {
            await agent.StopAsync();
        }
    }

    [Fact]
    public async Task Scraped_metrics_parse_as_Prometheus_text_and_count_what_a_create_did()
    {
        var (status, operation) = await cloud.Http.PostAsync("/v1/vms", """{"name":"counted","flavor":"m1.tiny"}""");
        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.Equal("SUCCEEDED", (await cloud.Http.WaitForOperationAsync(operation.Str("id"))).Str("state"));
        var node = (await cloud.Http.GetJsonAsync($"/v1/vms/{operation.Str("targetId")}")).Body.Str("node");

        // The operation's metrics are recorded as its run ends, a moment after its row says so.
        List<Sample> controller = [];
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        do
        {
            controller = await ScrapeAsync(cloud.ControllerMetricsUrl);
        }
        while (!controller.Any(s => s.Is("cloud_operation_duration_seconds_count", ("cloud_operation_kind", "vm.create"), ("cloud_operation_outcome", "succeeded")))
            && DateTime.UtcNow < deadline);

        Assert.True(Value(controller, "cloud_scheduler_placements_total", ("cloud_placement_mode", "single"), ("cloud_placement_outcome", "placed")) >= 1);
        var placementCount = Value(controller, "cloud_scheduler_placement_duration_seconds_count", ("cloud_placement_mode", "single"), ("cloud_placement_outcome", "placed"));
        Assert.True(placementCount >= 1);
        Assert.Equal(placementCount, Value(controller, "cloud_scheduler_placement_duration_seconds_bucket", ("cloud_placement_mode", "single"), ("cloud_placement_outcome", "placed"), ("le", "+Inf")));
        Assert.True(Value(controller, "cloud_scheduler_placement_duration_seconds_sum", ("cloud_placement_mode", "single"), ("cloud_placement_outcome", "placed")) > 0);
        Assert.True(Value(controller, "cloud_operation_duration_seconds_count", ("cloud_operation_kind", "vm.create"), ("cloud_operation_outcome", "succeeded")) >= 1);
        Assert.True(Value(controller, "cloud_ledger_claims_committed_total") >= 1);

        // Capacity: the node the VM went to holds at least its vCPU, within what the node offers.
        var used = Value(controller, "cloud_node_capacity_usage", ("cloud_node_name", node), ("cloud_resource_class", "VCPU"));
        var limit = Value(controller, "cloud_node_capacity_limit", ("cloud_node_name", node), ("cloud_resource_class", "VCPU"));
        Assert.InRange(used, 1, limit);
        Assert.True(Value(controller, "cloud_capacity_limit", ("cloud_resource_class", "MEMORY_MB")) >= 2 * 8192);
        Assert.True(Value(controller, "cloud_nodes", ("cloud_node_state", "UP"), ("cloud_node_schedulable", "true")) >= 2);
        // Heartbeats every second here (Nodes:HeartbeatInterval), DOWN after 10 s.
        Assert.InRange(Value(controller, "cloud_node_heartbeat_lag_seconds", ("cloud_node_name", node)), 0, 10);
        Assert.True(Value(controller, "cloud_node_heartbeat_interval_seconds_count") >= 1);

        // The agent that created the guest timed its QMP commands, per command.
        var agent = await ScrapeAsync(cloud.AgentMetricsUrls[int.Parse(node["otel-node-".Length..], System.Globalization.CultureInfo.InvariantCulture) - 1]);
        var qmp = agent.Where(s => s.Name == "cloud_qmp_command_duration_seconds_count" && !s.Labels.ContainsKey("error_type")).ToList();
        Assert.NotEmpty(qmp);
        Assert.All(qmp, s =>
        {
            Assert.True(s.Value >= 1);
            Assert.Equal(s.Value, agent.Single(b => b.Is("cloud_qmp_command_duration_seconds_bucket", ("qmp_command", s.Labels["qmp_command"]), ("le", "+Inf"))
                && !b.Labels.ContainsKey("error_type")).Value);
        });
        // Every process reports the runtime's and ASP.NET Core's own metrics too.
        Assert.Contains(agent, s => s.Name.StartsWith("dotnet_", StringComparison.Ordinal));
        Assert.Contains(controller, s => s.Name.StartsWith("http_server_request_duration_seconds", StringComparison.Ordinal));
    }

    private sealed record Sample(string Name, Dictionary<string, string> Labels, double Value)
    {
        public bool Is(string name, params (string Key, string Value)[] labels)
            => Name == name && labels.All(l => Labels.TryGetValue(l.Key, out var v) && v == l.Value);
    }

    private static double Value(List<Sample> samples, string name, params (string Key, string Value)[] labels)
    {
        var matching = samples.Where(s => s.Is(name, labels)).ToList();
        return matching.Count == 1
            ? matching[0].Value
            : throw new Xunit.Sdk.XunitException($"{matching.Count} samples of {name}{{{string.Join(",", labels.Select(l => $"{l.Key}={l.Value}"))}}}; the scrape had {string.Join(", ", samples.Select(s => s.Name).Distinct().Order())}");
    }

    /// <summary>Scrapes with the token and parses with Debian's python3-prometheus-client, which refuses malformed text.</summary>
    private static async Task<List<Sample>> ScrapeAsync(Uri url)
    {
        using var http = new HttpClient { BaseAddress = url };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TelemetryCloudFixture.ScrapeToken);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        var text = await response.Content.ReadAsStringAsync();

        const string parse = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = []
            for family in text_string_to_metric_families(sys.stdin.read()):
                for s in family.samples:
                    out.append({"name": s.name, "labels": s.labels, "value": s.value, "type": family.type})
            json.dump(out, sys.stdout)
            """;
        using var python = Process.Start(new ProcessStartInfo("/usr/bin/python3", ["-c", parse])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        await python.StandardInput.WriteAsync(text);
        python.StandardInput.Close();
        var stdout = python.StandardOutput.ReadToEndAsync();
        var stderr = python.StandardError.ReadToEndAsync();
        await python.WaitForExitAsync();
        Assert.True(python.ExitCode == 0, $"The Prometheus parser refused the scrape of {url}: {await stderr}\n{text}");
        using var doc = JsonDocument.Parse(await stdout);
        return [.. doc.RootElement.EnumerateArray().Select(s => new Sample(
            s.GetProperty("name").GetString()!,
            s.GetProperty("labels").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!),
            s.GetProperty("value").GetDouble()))];
    }

    private static async Task<HttpStatusCode> StatusAsync(HttpClient http, string path, AuthenticationHeaderValue? authorization)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = authorization;
        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }

    /// <summary>The spans so far; the exporter may be adding one meanwhile, so a torn copy is taken again.</summary>
    private static List<Activity> Snapshot(List<Activity> spans)
    {
        while (true)
        {
            try
            {
                return [.. spans.ToArray().Where(s => s is not null)];
            }
            catch (ArgumentException)
            {
            }
        }
    }

    /// <summary>The solo agents' certificates, issued beforehand since they have no controller to join.</summary>
    private static readonly Lazy<string> SoloTlsDirectory = new(() =>
    {
        var folder = Path.Combine(Path.GetTempPath(), "cloud-telemetry-solo-tls");
        Cloud.Testing.TestTrust.Shared.WriteNodeFolder(folder, "telemetry-solo", IPAddress.Loopback);
        return folder;
    });

    /// <summary>An agent on the fake backend with these telemetry settings; its controller does not exist (it only retries registering).</summary>
    private static WebApplication NewAgent(Dictionary<string, string?> telemetry)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Agent:Listen"] = $"127.0.0.1:{Ports.Free(IPAddress.Loopback)}",
            ["Agent:ControllerUrl"] = "https://127.0.0.1:9",
            ["Agent:NodeName"] = "telemetry-solo",
            ["Agent:TlsDirectory"] = SoloTlsDirectory.Value,
            ["Agent:Backend"] = "fake",
        });
        builder.Configuration.AddInMemoryCollection(telemetry);
        builder.Logging.ClearProviders();
        builder.AddAgent();
        var app = builder.Build();
        app.MapAgent();
        return app;
    }
}
