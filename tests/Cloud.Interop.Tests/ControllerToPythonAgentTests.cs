using System.Globalization;
using System.Text.RegularExpressions;
using Cloud.Contracts.Agent.V1;
using Cloud.Controller.Nodes;
using Cloud.Interop.Tests.Support;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Cloud.Interop.Tests;

/// <summary>
/// The controller's own agent client (AgentConnections: channel, retries, breaker, per-attempt
/// deadline) against a NodeAgent served by python3-grpcio.
/// </summary>
[Collection(InteropCollection.Name)]
public sealed partial class ControllerToPythonAgentTests(InteropFixture interop)
{
    private AgentConnection Agent
        => interop.Cloud.ControllerServices.GetRequiredService<AgentConnections>().For(InteropFixture.PythonNodeName, interop.PythonAgentUrl.ToString().TrimEnd('/'));

    private static DateTime Soon => DateTime.UtcNow.AddSeconds(10);

    [Fact]
    public async Task GetNodeInfo_through_the_resilience_pipeline()
    {
        var info = await Agent.CallAsync((client, options) => client.GetNodeInfoAsync(new GetNodeInfoRequest(), options), CancellationToken.None);

        Assert.Equal("py-agent", info.NodeName);
        Assert.Equal("python-grpcio", info.Hypervisor);
        Assert.Equal(Accelerator.Fake, info.Accelerator);
        Assert.Equal(["DISK_GB", "MEMORY_MB", "VCPU"], info.Inventories.Select(i => i.ResourceClass).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_server_stream_arrives_in_order_with_its_status_and_trailers()
    {
        using var call = Agent.Client.ReadImage(new ReadStoredImageRequest { ImageId = "count-5" }, deadline: Soon);
        var chunks = new List<string>();
        await foreach (var chunk in call.ResponseStream.ReadAllAsync())
        {
            chunks.Add(chunk.Data.ToStringUtf8());
        }

        Assert.Equal(["chunk-0", "chunk-1", "chunk-2", "chunk-3", "chunk-4"], chunks);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Equal("5", call.GetTrailers().GetValue("x-chunks"));
    }

    [Fact]
    public async Task WatchEvents_delivers_every_event_in_order_and_ends()
    {
        using var call = Agent.Client.WatchEvents(new WatchEventsRequest(), deadline: Soon);
        var events = new List<VmEvent>();
        await foreach (var vmEvent in call.ResponseStream.ReadAllAsync())
        {
            events.Add(vmEvent);
        }

        Assert.Equal(["vm-1", "vm-2", "vm-3"], events.Select(e => e.VmId));
        Assert.All(events, e => Assert.Equal(VmState.Running, e.State));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task A_stream_that_fails_gives_the_status_and_its_message()
    {
        using var call = Agent.Client.ReadImage(new ReadStoredImageRequest { ImageId = "nope" }, deadline: Soon);

        var error = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext(CancellationToken.None));

        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Equal("Image nope is not in this node's store.", error.Status.Detail);
    }

    [Fact]
    public async Task A_not_found_through_the_pipeline_keeps_its_message_and_is_not_retried()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => Agent.CallAsync(
            (client, options) => client.GetConsoleOutputAsync(new GetConsoleOutputRequest { VmId = "missing-once" }, options), CancellationToken.None));

        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Equal("VM missing-once is not on this node.", error.Status.Detail);
        // A sentinel call after it: between the two, the agent saw the failing call once.
        await Agent.CallAsync((client, options) => client.GetConsoleOutputAsync(new GetConsoleOutputRequest { VmId = "sentinel-once" }, options), CancellationToken.None);
        var seen = 0;
        await interop.AgentObservedAsync(e =>
        {
            var vm = InteropFixture.Field(e, "vm_id");
            seen += vm == "missing-once" && InteropFixture.Field(e, "event") == "GetConsoleOutput" ? 1 : 0;
            return vm == "sentinel-once";
        });
        Assert.Equal(1, seen);
    }

    [Fact]
    public async Task The_agent_sees_the_per_attempt_deadline_of_a_background_call()
    {
        var output = await Agent.CallAsync(
            (client, options) => client.GetConsoleOutputAsync(new GetConsoleOutputRequest { VmId = "plain-1" }, options), CancellationToken.None);

        var remaining = TimeRemaining(output.Data.ToStringUtf8());
        Assert.InRange(remaining, AgentConnections.AttemptTimeout.TotalSeconds - 10, AgentConnections.AttemptTimeout.TotalSeconds + DeadlinePropagationTests.HeaderRounding);
    }

    [Fact]
    public async Task The_agent_sees_a_callers_deadline_when_it_is_the_sooner()
    {
        var output = await Agent.CallAsync(
            (client, options) => client.GetConsoleOutputAsync(new GetConsoleOutputRequest { VmId = "plain-2" }, options),
            DateTime.UtcNow.AddSeconds(5), CancellationToken.None);

        Assert.InRange(TimeRemaining(output.Data.ToStringUtf8()), 0.001, 5.0 + DeadlinePropagationTests.HeaderRounding);
    }

    [Fact]
    public async Task A_callers_deadline_that_passes_while_the_agent_works_cancels_the_agents_call_and_is_not_retried()
    {
        var started = DateTime.UtcNow;
        var error = await Assert.ThrowsAsync<RpcException>(() => Agent.CallAsync(
            (client, options) => client.GetConsoleOutputAsync(new GetConsoleOutputRequest { VmId = "slow-deadline" }, options),
            DateTime.UtcNow.AddSeconds(1.5), CancellationToken.None));

        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        Assert.InRange((DateTime.UtcNow - started).TotalSeconds, 1.0, 10.0);
        var ended = await interop.AgentObservedAsync(e => InteropFixture.Field(e, "event") == "GetConsoleOutputEnded" && InteropFixture.Field(e, "vm_id") == "slow-deadline");
        Assert.False(ended.GetProperty("active").GetBoolean());
        Assert.InRange(ended.GetProperty("waited").GetDouble(), 0.5, 10.0);
    }

    [Fact]
    public async Task A_caller_that_goes_away_cancels_the_agents_call()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        var error = await Assert.ThrowsAsync<RpcException>(() => Agent.CallAsync(
            (client, options) => client.GetConsoleOutputAsync(new GetConsoleOutputRequest { VmId = "slow-cancel" }, options),
            DateTime.UtcNow.AddSeconds(30), cancel.Token));

        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        var ended = await interop.AgentObservedAsync(e => InteropFixture.Field(e, "event") == "GetConsoleOutputEnded" && InteropFixture.Field(e, "vm_id") == "slow-cancel");
        Assert.False(ended.GetProperty("active").GetBoolean());
        Assert.InRange(ended.GetProperty("waited").GetDouble(), 0.2, 10.0);
    }

    internal static double TimeRemaining(string output)
    {
        var match = TimeRemainingLine().Match(output);
        Assert.True(match.Success, $"No time_remaining in: {output}");
        return double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"time_remaining=(-?[0-9.]+)")]
    private static partial Regex TimeRemainingLine();
}
