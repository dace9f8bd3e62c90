using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Cloud.Grpc.Tests.Echo;
using Cloud.Grpc.Tests.Support;
using Google.Protobuf;

namespace Cloud.Grpc.Tests;

/// <summary>Our client against our server on a real Kestrel over h2c.</summary>
public class EndToEndTests(EchoServerFixture fixture) : IClassFixture<EchoServerFixture>
{
    private const int FiveMiB = 5 * 1024 * 1024;

    private GrpcTestServer Server => fixture.Server;

    private GrpcChannel Channel(GrpcChannelOptions? options = null) => GrpcChannel.ForAddress(Server.Address, options);

    [Fact]
    public async Task Unary_EchoesTheRequest()
    {
        using var channel = Channel();
        var response = await channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Message = "hello", Payload = ByteString.CopyFromUtf8("data") }, default);
        Assert.Equal("hello", response.Message);
        Assert.Equal("data", response.Payload.ToStringUtf8());
    }

    [Fact]
    public async Task Unary_ServerSeesUserAgentAndPeer()
    {
        using var channel = Channel();
        await channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Message = "who-am-i" }, default);
        var seen = await Server.Probe.WhenReported("who-am-i");
        Assert.StartsWith("grpc-csharp-cloud/", seen.UserAgent, StringComparison.Ordinal);
        Assert.StartsWith("ipv4:127.0.0.1:", seen.Peer, StringComparison.Ordinal);
        Assert.Equal(DateTime.MaxValue, seen.Deadline);
    }

    [Fact]
    public async Task ServerStreaming_ReceivesEveryMessageThenOk()
    {
        using var channel = Channel();
        using var call = channel.ServerStreaming(EchoMethods.Stream, new EchoRequest { Message = "s", Count = 5 }, default);
        var indexes = new List<int>();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            indexes.Add(call.ResponseStream.Current.Index);
        }
        Assert.Equal([0, 1, 2, 3, 4], indexes);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.False(await call.ResponseStream.MoveNext(CancellationToken.None));
    }

    [Fact]
    public async Task ServerStreaming_StatusBeforeEnd_Throws()
    {
        using var channel = Channel();
        using var call = channel.ServerStreaming(EchoMethods.Stream, new EchoRequest { Count = 1 }, default);
        Assert.Throws<InvalidOperationException>(() => call.GetStatus());
    }

    [Fact]
    public async Task Metadata_RoundTripsAsciiAndBinaryThroughHeadersAndTrailers()
    {
        using var channel = Channel();
        var binary = new byte[] { 0, 1, 2, 250, 255 };
        var headers = new Metadata().Add("x-token", "abc 123").Add("x-data-bin", binary);
        using var call = channel.ServerStreaming(EchoMethods.Stream, new EchoRequest { Count = 1 }, new CallOptions(headers));

        var responseHeaders = await call.ResponseHeadersAsync;
        Assert.Equal("abc 123", responseHeaders.GetValue("echo-x-token"));
        Assert.Equal(binary, responseHeaders.Get("echo-x-data-bin")!.ValueBytes);

        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
        }
        var trailers = call.GetTrailers();
        Assert.Equal("abc 123", trailers.GetValue("trailer-x-token"));
        Assert.Equal(binary, trailers.Get("trailer-x-data-bin")!.ValueBytes);
        Assert.DoesNotContain(trailers, e => e.Key.StartsWith("grpc-", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Deadline_ServerNeverAnswers_ClientStillFailsWithDeadlineExceeded()
    {
        // A TCP peer that accepts and then says nothing at all, not even HTTP/2 SETTINGS.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var accepting = silent.AcceptSocketAsync();
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}");

        var stopwatch = Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Unary, new EchoRequest(), new CallOptions().WithTimeout(TimeSpan.FromMilliseconds(300))));
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
        Assert.InRange(stopwatch.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5));
        (await accepting).Dispose();
    }

    [Fact]
    public async Task Deadline_HandlerSeesDeadlineAndCancellation()
    {
        using var channel = Channel();
        var before = DateTime.UtcNow;
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Wait, new EchoRequest { Message = "deadline-wait" }, new CallOptions().WithTimeout(TimeSpan.FromMilliseconds(400))));
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);

        var seen = await Server.Probe.WhenReported("deadline-wait");
        Assert.Equal("cancelled", seen.Outcome);
        Assert.True(seen.TokenCancelled);
        // grpc-timeout carried the deadline: the server's view is within clock jitter of ours.
        Assert.InRange(seen.Deadline, before, before + TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task Deadline_StreamingCallPastItsDeadline_IsDeadlineExceeded()
    {
        using var channel = Channel();
        // The connection is made and the server's code compiled first, so that the deadline falls
        // mid-stream even on a busy machine: it had passed before the first message once, at 300 ms.
        await channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Message = "deadline-warm-up" }, new CallOptions());
        using var call = channel.ServerStreaming(EchoMethods.Stream, new EchoRequest { Message = "deadline-stream", Count = 0, DelayMs = 20 },
            new CallOptions().WithTimeout(TimeSpan.FromSeconds(1)));
        var received = 0;
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                received++;
            }
        });
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
        Assert.True(received > 0);
        Assert.Equal(StatusCode.DeadlineExceeded, call.GetStatus().StatusCode);
        Assert.True((await Server.Probe.WhenReported("deadline-stream")).TokenCancelled);
    }

    [Fact]
    public async Task Deadline_AlreadyPassed_FailsWithoutCallingTheServer()
    {
        using var channel = Channel();
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Message = "too-late" }, new CallOptions(Deadline: DateTime.UtcNow.AddSeconds(-1))));
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
    }

    [Fact]
    public async Task Cancellation_UnaryCancelledByClient_ServerObservesIt()
    {
        using var channel = Channel();
        using var cts = new CancellationTokenSource();
        var call = channel.UnaryAsync(EchoMethods.Wait, new EchoRequest { Message = "cancel-unary" }, new CallOptions(CancellationToken: cts.Token));
        await Server.Probe.WhenStarted("cancel-unary");
        await cts.CancelAsync();

        var ex = await Assert.ThrowsAsync<RpcException>(() => call);
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        var seen = await Server.Probe.WhenReported("cancel-unary");
        Assert.Equal("cancelled", seen.Outcome);
        Assert.True(seen.TokenCancelled);
    }

    [Fact]
    public async Task Cancellation_StreamCancelledMidway_ServerObservesIt()
    {
        using var channel = Channel();
        using var cts = new CancellationTokenSource();
        using var call = channel.ServerStreaming(EchoMethods.Stream, new EchoRequest { Message = "cancel-stream", Count = 0, DelayMs = 10 },
            new CallOptions(CancellationToken: cts.Token));
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        await cts.CancelAsync();

        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        });
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        Assert.Equal("cancelled", (await Server.Probe.WhenReported("cancel-stream")).Outcome);
    }

    [Fact]
    public async Task Cancellation_DisposingAStreamingCall_CancelsItOnTheServer()
    {
        using var channel = Channel();
        var call = channel.ServerStreaming(EchoMethods.Stream, new EchoRequest { Message = "dispose-stream", Count = 0, DelayMs = 10 }, default);
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        call.Dispose();
        Assert.Equal(StatusCode.Cancelled, call.GetStatus().StatusCode);
        Assert.Equal("cancelled", (await Server.Probe.WhenReported("dispose-stream")).Outcome);
    }

    [Fact]
    public async Task Cancellation_TokenCancelledBeforeTheCall_IsCancelled()
    {
        using var channel = Channel();
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Unary, new EchoRequest(), new CallOptions(CancellationToken: new CancellationToken(true))));
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
    }

    [Fact]
    public async Task Limits_RequestOver4MiB_IsResourceExhaustedFromTheServer()
    {
        using var channel = Channel();
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Payload = ByteString.CopyFrom(new byte[FiveMiB]) }, default));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
        Assert.Contains("Received message exceeds", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Limits_ResponseOver4MiB_IsResourceExhaustedOnTheClient()
    {
        using var channel = Channel();
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { ResponseSize = FiveMiB }, default));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
        Assert.Contains("Received message exceeds", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Limits_RaisedClientLimit_AcceptsTheLargeResponse()
    {
        using var channel = Channel(new GrpcChannelOptions { MaxReceiveMessageSize = null });
        var response = await channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { ResponseSize = FiveMiB }, default);
        Assert.Equal(FiveMiB, response.Payload.Length);
    }

    [Fact]
    public async Task Limits_ClientSendLimit_FailsLocally()
    {
        using var channel = Channel(new GrpcChannelOptions { MaxSendMessageSize = 100 });
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Message = "never-sent", Payload = ByteString.CopyFrom(new byte[200]) }, default));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
        Assert.Contains("Sending message exceeds", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownMethod_IsUnimplemented()
    {
        using var channel = Channel();
        var ex = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(EchoMethods.Missing, new EchoRequest(), default));
        Assert.Equal(StatusCode.Unimplemented, ex.StatusCode);
        Assert.Contains("/echo.v1.Echo/Missing", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownService_IsUnimplemented()
    {
        using var channel = Channel();
        var ex = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(EchoMethods.MissingService, new EchoRequest(), default));
        Assert.Equal(StatusCode.Unimplemented, ex.StatusCode);
    }

    [Fact]
    public async Task HandlerRpcException_ArrivesWithStatusMessageAndTrailers()
    {
        using var channel = Channel();
        const string message = "no such VM: ü 100% \"gone\"\nsecond line";
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Fail, new EchoRequest { FailCode = (int)StatusCode.NotFound, FailMessage = message }, default));
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
        Assert.Equal(message, ex.Status.Detail);
        Assert.Equal("detail", ex.Trailers.GetValue("fail-detail"));
        Assert.Equal(new byte[] { 1, 2, 3 }, ex.Trailers.Get("fail-bin")!.ValueBytes);
    }

    [Fact]
    public async Task HandlerPlainException_IsUnknownWithoutLeakingItsMessage()
    {
        using var channel = Channel();
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(EchoMethods.Fail, new EchoRequest { FailCode = EchoService.ThrowPlainException }, default));
        Assert.Equal(StatusCode.Unknown, ex.StatusCode);
        Assert.Equal("Exception was thrown by handler.", ex.Status.Detail);
        Assert.DoesNotContain("secret", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConcurrentCalls_ShareOneChannel()
    {
        using var channel = Channel();
        var calls = Enumerable.Range(0, 50).Select(i =>
            channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Message = $"c{i}" }, default)).ToArray();
        var responses = await Task.WhenAll(calls);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"c{i}"), responses.Select(r => r.Message));
    }

    [Fact]
    public async Task ConnectionRefused_IsUnavailable()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
        var ex = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(EchoMethods.Unary, new EchoRequest(), default));
        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
    }

    [Theory]
    [InlineData("ftp://127.0.0.1:1")]
    [InlineData("127.0.0.1:5000")]
    [InlineData("not a url")]
    public void ForAddress_RejectsAddressesThatAreNotHttp(string address)
        => Assert.Throws<ArgumentException>(() => GrpcChannel.ForAddress(address));
}
