using System.Text.Json;
using Cloud.Grpc.Tests.Support;

namespace Cloud.Grpc.Tests.Interop;

/// <summary>python3-grpcio's client calling our server.</summary>
[Collection(PythonInteropCollection.Name)]
public class PythonClientInteropTests(PythonInteropFixture fixture)
{
    private async Task<JsonElement> Case(string name)
    {
        var run = await fixture.ClientRunAsync();
        Assert.True(run.Results.TryGetValue(name, out var result), $"echo_client.py reported no '{name}' case.");
        return result;
    }

    private static string Code(JsonElement result) => result.GetProperty("code").GetString()!;

    [Fact]
    public async Task Unary_WithAsciiAndBinaryMetadataBothWays()
    {
        var result = await Case("unary");
        Assert.Equal("OK", Code(result));
        Assert.Equal("hello ü", result.GetProperty("message").GetString());
        Assert.Equal("0001", result.GetProperty("payload").GetString());
        var headers = result.GetProperty("headers");
        Assert.Equal("abc", headers.GetProperty("echo-x-token").GetString());
        Assert.Equal("00ff10", headers.GetProperty("echo-x-data-bin").GetString());
        var trailers = result.GetProperty("trailers");
        Assert.Equal("abc", trailers.GetProperty("trailer-x-token").GetString());
        Assert.Equal("00ff10", trailers.GetProperty("trailer-x-data-bin").GetString());
    }

    [Fact]
    public async Task ServerStreaming_AllMessagesInOrder()
    {
        var result = await Case("stream");
        Assert.Equal("OK", Code(result));
        Assert.Equal([0, 1, 2, 3, 4], result.GetProperty("indexes").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public async Task Deadline_ClientSeesDeadlineExceededAndHandlerIsCancelled()
    {
        var result = await Case("deadline");
        Assert.Equal("DEADLINE_EXCEEDED", Code(result));
        var seen = await (await fixture.ClientRunAsync()).Server.Probe.WhenReported("py-deadline");
        Assert.Equal("cancelled", seen.Outcome);
        Assert.True(seen.TokenCancelled);
        Assert.NotEqual(DateTime.MaxValue, seen.Deadline);
    }

    [Fact]
    public async Task Cancellation_MidStream_IsObservedByTheHandler()
    {
        var result = await Case("cancel");
        Assert.Equal([0, 1], result.GetProperty("received").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal("CANCELLED", result.GetProperty("after_cancel").GetString());
        var seen = await (await fixture.ClientRunAsync()).Server.Probe.WhenReported("py-cancel");
        Assert.Equal("cancelled", seen.Outcome);
        Assert.True(seen.TokenCancelled);
    }

    [Fact]
    public async Task OversizedRequest_IsResourceExhausted()
        => Assert.Equal("RESOURCE_EXHAUSTED", Code(await Case("oversized")));

    [Theory]
    [InlineData("unknown_method")]
    [InlineData("unknown_service")]
    public async Task UnknownMethod_IsUnimplemented(string name)
        => Assert.Equal("UNIMPLEMENTED", Code(await Case(name)));

    [Fact]
    public async Task HandlerRpcException_StatusMessageAndTrailersArrive()
    {
        var result = await Case("fail");
        Assert.Equal("NOT_FOUND", Code(result));
        Assert.Equal("no such VM: ü 100%", result.GetProperty("details").GetString());
        Assert.Equal("detail", result.GetProperty("trailers").GetProperty("fail-detail").GetString());
        Assert.Equal("010203", result.GetProperty("trailers").GetProperty("fail-bin").GetString());
    }

    [Fact]
    public async Task HandlerPlainException_IsUnknownWithTheGenericMessage()
    {
        var result = await Case("fail_unknown");
        Assert.Equal("UNKNOWN", Code(result));
        Assert.Equal("Exception was thrown by handler.", result.GetProperty("details").GetString());
    }

    [Fact]
    public async Task HealthCheck_ServerIsServing()
    {
        var result = await Case("health_check");
        Assert.Equal("OK", Code(result));
        Assert.Equal("SERVING", result.GetProperty("status").GetString());
    }

    [Fact]
    public async Task HealthCheck_UnknownServiceIsNotFound()
        => Assert.Equal("NOT_FOUND", Code(await Case("health_check_unknown")));

    [Fact]
    public async Task HealthWatch_StreamsTheCurrentStatus()
    {
        var result = await Case("health_watch");
        Assert.Equal("OK", Code(result));
        Assert.Equal("SERVING", result.GetProperty("status").GetString());
    }
}
