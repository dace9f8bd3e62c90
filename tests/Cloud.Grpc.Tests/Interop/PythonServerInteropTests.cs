using Cloud.Grpc.Tests.Echo;
using Cloud.Grpc.Tests.Support;
using Google.Protobuf;

namespace Cloud.Grpc.Tests.Interop;

/// <summary>Our client calling python3-grpcio's server.</summary>
[Collection(PythonInteropCollection.Name)]
public class PythonServerInteropTests(PythonInteropFixture fixture)
{
    private async Task<GrpcChannel> ChannelAsync() => GrpcChannel.ForAddress(await fixture.PythonServerAsync());

    [Fact]
    public async Task Unary_RoundTrip()
    {
        using var channel = await ChannelAsync();
        var response = await channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Message = "to python ü", Payload = ByteString.CopyFrom(1, 2, 3) }, default);
        Assert.Equal("to python ü", response.Message);
        Assert.Equal(new byte[] { 1, 2, 3 }, response.Payload.ToByteArray());
    }

    [Fact]
    public async Task ServerStreaming_WithMetadataBothWays()
    {
        using var channel = await ChannelAsync();
        var binary = new byte[] { 0, 255, 16, 32 };
        var headers = new Metadata().Add("x-token", "abc").Add("x-data-bin", binary);
        using var call = channel.ServerStreaming(EchoMethods.Stream, new EchoRequest { Count = 5 }, new CallOptions(headers).WithTimeout(TimeSpan.FromSeconds(10)));

        var responseHeaders = await call.ResponseHeadersAsync;
        Assert.Equal("abc", responseHeaders.GetValue("echo-x-token"));
        Assert.Equal(binary, responseHeaders.Get("echo-x-data-bin")!.ValueBytes);

        var indexes = new List<int>();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            indexes.Add(call.ResponseStream.Current.Index);
        }
        Assert.Equal([0, 1, 2, 3, 4], indexes);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Equal("abc", call.GetTrailers().GetValue("trailer-x-token"));
        Assert.Equal(binary, call.GetTrailers().Get("trailer-x-data-bin")!.ValueBytes);
    }

    [Fact]
    public async Task Deadline_IsDeadlineExceeded()
    {
        using var channel = await ChannelAsync();
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Wait, new EchoRequest(), new CallOptions().WithTimeout(TimeSpan.FromMilliseconds(300))));
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
    }

    [Fact]
    public async Task ErrorStatus_WithMessageAndTrailers()
    {
        using var channel = await ChannelAsync();
        const string message = "precondition failed: ü 100% \"quoted\"";
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Fail, new EchoRequest { FailCode = (int)StatusCode.FailedPrecondition, FailMessage = message }, default));
        Assert.Equal(StatusCode.FailedPrecondition, ex.StatusCode);
        Assert.Equal(message, ex.Status.Detail);
        Assert.Equal("detail", ex.Trailers.GetValue("fail-detail"));
        Assert.Equal(new byte[] { 1, 2, 3 }, ex.Trailers.Get("fail-bin")!.ValueBytes);
    }

    [Fact]
    public async Task OversizedResponse_IsResourceExhausted()
    {
        using var channel = await ChannelAsync();
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { ResponseSize = 5 * 1024 * 1024 }, default));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
    }

    [Fact]
    public async Task UnknownMethod_IsUnimplemented()
    {
        using var channel = await ChannelAsync();
        var ex = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(EchoMethods.Missing, new EchoRequest(), default));
        Assert.Equal(StatusCode.Unimplemented, ex.StatusCode);
    }

    [Fact]
    public async Task Cancellation_MidStream_IsCancelled()
    {
        using var channel = await ChannelAsync();
        using var cts = new CancellationTokenSource();
        using var call = channel.ServerStreaming(EchoMethods.Stream, new EchoRequest { Count = 0, DelayMs = 10 }, new CallOptions(CancellationToken: cts.Token));
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        await cts.CancelAsync();
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        });
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
    }

    [Fact]
    public async Task LargeRequest_UnderPythonsLimit_IsServed()
    {
        using var channel = await ChannelAsync();
        var response = await channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Payload = ByteString.CopyFrom(new byte[3 * 1024 * 1024]) }, default);
        Assert.Equal(3 * 1024 * 1024, response.Payload.Length);
    }
}
