using Cloud.Grpc.Tests.Echo;
using Cloud.Grpc.Tests.Support;

namespace Cloud.Grpc.Tests;

/// <summary>The client facing responses that a correct gRPC server never sends.</summary>
public class QuirkyServerTests(EchoServerFixture fixture) : IClassFixture<EchoServerFixture>
{
    [Theory]
    [InlineData("TrailersOnlyOk", StatusCode.Unimplemented)]   // unary without a message
    [InlineData("Html", StatusCode.Unknown)]                    // not a gRPC content-type
    [InlineData("Http503", StatusCode.Unavailable)]
    [InlineData("Http401", StatusCode.Unauthenticated)]
    [InlineData("Nowhere", StatusCode.Unimplemented)]           // HTTP 404
    [InlineData("NoStatus", StatusCode.Unknown)]
    [InlineData("TwoMessages", StatusCode.Unimplemented)]       // unary with two messages
    [InlineData("BadStatus", StatusCode.Unknown)]
    [InlineData("TruncatedMessage", StatusCode.Internal)]
    [InlineData("RefusedStream", StatusCode.Unavailable)]
    [InlineData("ResetAfterMessage", StatusCode.Internal)]
    public async Task Unary_MapsBrokenResponsesToStatuses(string quirk, StatusCode expected)
    {
        using var channel = GrpcChannel.ForAddress(fixture.Server.Address);
        var ex = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(QuirkyServer.Unary(quirk), new EchoRequest(), default));
        Assert.Equal(expected, ex.StatusCode);
        Assert.False(string.IsNullOrEmpty(ex.Status.Detail));
    }

    [Fact]
    public async Task ServerStreaming_TrailersOnlyOk_IsAnEmptyStream()
    {
        using var channel = GrpcChannel.ForAddress(fixture.Server.Address);
        using var call = channel.ServerStreaming(QuirkyServer.Streaming("TrailersOnlyOk"), new EchoRequest(), default);
        Assert.False(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task ServerStreaming_ResetAfterAMessage_FailsWithInternal()
    {
        // RST_STREAM is an immediate full closure: whether the message before it is still
        // delivered depends on timing, but the stream must end with the mapped status.
        using var channel = GrpcChannel.ForAddress(fixture.Server.Address);
        using var call = channel.ServerStreaming(QuirkyServer.Streaming("ResetAfterMessage"), new EchoRequest(), default);
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                Assert.Equal("one", call.ResponseStream.Current.Message);
            }
        });
        Assert.Equal(StatusCode.Internal, ex.StatusCode);
        Assert.Equal(StatusCode.Internal, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task BadStatus_KeepsThePeersMessage()
    {
        using var channel = GrpcChannel.ForAddress(fixture.Server.Address);
        var ex = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(QuirkyServer.Unary("BadStatus"), new EchoRequest(), default));
        Assert.Contains("odd server", ex.Status.Detail, StringComparison.Ordinal);
    }
}
