using System.Net;
using System.Text.Json;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>Lists with pages and label filters, the watch of VM changes (Server-Sent Events and a
/// server-streaming call), and the OpenAPI document.</summary>
[Collection(CloudCollection.Name)]
public sealed class ListAndWatchTests(CloudFixture cloud) : IDisposable
{
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    [Fact]
    public async Task Vms_filter_by_label_and_page_on_both_wires()
    {
        using var tenant = await cloud.CreateTenantAsync("labels");
        await tenant.Member.CreateRunningVmAsync("web-a", labels: """{"tier":"web","env":"prod"}""");
        await tenant.Member.CreateRunningVmAsync("web-b", labels: """{"tier":"web","env":"dev"}""");
        await tenant.Member.CreateRunningVmAsync("db-a", labels: """{"tier":"db","env":"prod"}""");

        Assert.Equal(["web-b", "web-a"], await NamesAsync(tenant.Reader, "/v1/vms?label_selector=tier%3Dweb"));
        Assert.Equal(["db-a", "web-a"], await NamesAsync(tenant.Reader, "/v1/vms?label_selector=env%3Dprod"));
        Assert.Equal(["web-a"], await NamesAsync(tenant.Reader, "/v1/vms?label_selector=tier%3Dweb,env%3Dprod"));
        Assert.Empty(await NamesAsync(tenant.Reader, "/v1/vms?label_selector=tier%3Dcache"));

        var (_, page) = await tenant.Reader.GetJsonAsync("/v1/vms?page_size=2");
        Assert.Equal(2, page.GetProperty("vms").GetArrayLength());
        Assert.Equal(["web-a"], await NamesAsync(tenant.Reader, $"/v1/vms?page_size=2&page_token={page.Str("nextPageToken")}"));

        var compute = new Compute.ComputeClient(_channel);
        var filtered = await compute.ListVmsAsync(new ListVmsRequest { LabelSelector = "tier=db" }, Tenancy.Bearer(tenant.ReaderToken));
        Assert.Equal(["db-a"], filtered.Vms.Select(v => v.Name));
    }

    [Fact]
    public async Task Server_sent_events_show_a_vm_change_state()
    {
        using var tenant = await cloud.CreateTenantAsync("sse");
        var vmId = await tenant.Member.CreateRunningVmAsync("watched");
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/vms/watch");
        using var response = await tenant.Reader.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        var first = await NextVmAsync(reader, deadline.Token);
        Assert.Equal(vmId, first.Str("id"));
        Assert.Equal("RUNNING", first.Str("state"));

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/stop")).Str("state"));
        JsonElement next;
        do
        {
            next = await NextVmAsync(reader, deadline.Token);
        }
        while (next.Str("state") != "STOPPED");
        Assert.Equal(vmId, next.Str("id"));
    }

    [Fact]
    public async Task The_grpc_watch_streams_the_same_changes_and_only_the_callers_vms()
    {
        using var tenant = await cloud.CreateTenantAsync("gwatch");
        using var other = await cloud.CreateTenantAsync("gother");
        var compute = new Compute.ComputeClient(_channel);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var call = compute.WatchVms(new WatchVmsRequest(), new CallOptions(Tenancy.Bearer(tenant.ReaderToken).Headers, cancellationToken: deadline.Token));

        var (_, created) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"streamed","flavor":"{{Tenancy.Nano}}"}""");
        await other.Member.CreateRunningVmAsync("invisible");
        var seen = new List<Vm>();
        while (await call.ResponseStream.MoveNext(deadline.Token))
        {
            seen.Add(call.ResponseStream.Current);
            if (call.ResponseStream.Current.State == "RUNNING")
            {
                break;
            }
        }

        Assert.All(seen, v => Assert.Equal(created.Str("targetId"), v.Id));
        Assert.Equal("RUNNING", seen[^1].State);
    }

    [Fact]
    public async Task A_bad_watch_selector_is_refused_before_the_stream_starts()
    {
        var (status, problem) = await cloud.Http.GetJsonAsync("/v1/vms/watch?label_selector=%3Dnokey");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("INVALID_ARGUMENT", problem.Str("code"));
        using var call = new Compute.ComputeClient(_channel).WatchVms(new WatchVmsRequest { LabelSelector = "=nokey" }, Tenancy.Bearer(CloudFixture.OperatorToken));
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    [Fact]
    public async Task The_controller_serves_its_openapi_document()
    {
        using var anonymous = cloud.NewHttpClient();
        using var doc = JsonDocument.Parse(await anonymous.GetStringAsync("/openapi/v1.json"));
        var paths = doc.RootElement.GetProperty("paths");
        foreach (var path in (string[])["/v1/vms", "/v1/vms/{id}/resize", "/v1/operations/{id}/cancel", "/v1/tenants", "/v1/tokens", "/v1/snapshots/{id}/restore"])
        {
            Assert.True(paths.TryGetProperty(path, out _), $"{path} is missing from the OpenAPI document.");
        }
    }

    private static async Task<JsonElement> NextVmAsync(StreamReader reader, CancellationToken cancellationToken)
    {
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                return JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone();
            }
        }
        throw new EndOfStreamException("The event stream ended.");
    }

    private static async Task<List<string>> NamesAsync(HttpClient http, string path)
    {
        var (status, list) = await http.GetJsonAsync(path);
        Assert.Equal(HttpStatusCode.OK, status);
        return [.. list.GetProperty("vms").EnumerateArray().Select(v => v.Str("name"))];
    }

    public void Dispose() => _channel.Dispose();
}
