using Cloud.Grpc.Tests.Echo;
using Cloud.Grpc.Tests.Support;
using Google.Protobuf;

namespace Cloud.Grpc.Tests;

/// <summary>A server with non-default options: send limit, no receive limit, detailed errors.</summary>
public sealed class ServerOptionsTests : IAsyncLifetime
{
    private GrpcTestServer _server = null!;

    public async Task InitializeAsync() => _server = await GrpcTestServer.StartAsync(options =>
    {
        options.MaxSendMessageSize = 1024;
        options.MaxReceiveMessageSize = null;
        options.EnableDetailedErrors = true;
    });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task ResponseOverServerSendLimit_IsResourceExhausted()
    {
        using var channel = GrpcChannel.ForAddress(_server.Address);
        var ex = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { ResponseSize = 2000 }, default));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
        Assert.Contains("Sending message exceeds", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoReceiveLimit_AcceptsLargeRequestsBeyondKestrelsBodyLimit()
    {
        // 40 MiB is over Kestrel's default 30 MB request body limit, which gRPC calls lift.
        using var channel = GrpcChannel.ForAddress(_server.Address);
        var response = await channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Payload = ByteString.CopyFrom(new byte[40 * 1024 * 1024]), ResponseSize = 1 }, default);
        Assert.Equal(1, response.Payload.Length);
    }

    [Fact]
    public async Task DetailedErrors_IncludeTheExceptionMessage()
    {
        using var channel = GrpcChannel.ForAddress(_server.Address);
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Fail, new EchoRequest { FailCode = EchoService.ThrowPlainException }, default));
        Assert.Equal(StatusCode.Unknown, ex.StatusCode);
        Assert.Equal($"Exception was thrown by handler. InvalidOperationException: {EchoService.SecretMessage}", ex.Status.Detail);
    }
}
