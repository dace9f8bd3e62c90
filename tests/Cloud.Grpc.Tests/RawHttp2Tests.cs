using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Cloud.Grpc.Tests.Echo;
using Cloud.Grpc.Tests.Support;
using Google.Protobuf;

namespace Cloud.Grpc.Tests;

/// <summary>
/// Hand-built HTTP/2 requests against the server, for what a well-behaved client never sends
/// and for the exact shape of responses on the wire.
/// </summary>
public class RawHttp2Tests(EchoServerFixture fixture) : IClassFixture<EchoServerFixture>, IDisposable
{
    private readonly HttpClient _http = new(new SocketsHttpHandler()) { Timeout = TimeSpan.FromSeconds(10) };

    private GrpcTestServer Server => fixture.Server;

    public void Dispose() => _http.Dispose();

    [Fact]
    public async Task FrameClaimingMoreBytesThanSent_IsInternalWithAClearMessage()
    {
        // Header says 100 bytes; only 3 follow before END_STREAM.
        var response = await SendAsync("/echo.v1.Echo/Unary", [0, 0, 0, 0, 100, 0x0A, 1, 0x41]);
        Assert.Equal(HttpStatusCode.OK, response.HttpStatus);
        Assert.Equal("13", response.GrpcStatus);
        Assert.Equal("Incomplete message: the header declares 100 bytes but the stream ended after 3.", response.GrpcMessage);
    }

    [Fact]
    public async Task TruncatedMessageHeader_IsInternal()
    {
        var response = await SendAsync("/echo.v1.Echo/Unary", [0, 0, 0]);
        Assert.Equal("13", response.GrpcStatus);
        Assert.Contains("Incomplete message", response.GrpcMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SuccessfulUnary_HasHeadersOneFramedMessageAndOkTrailers()
    {
        var request = new EchoRequest { Message = "wire" };
        var response = await SendAsync("/echo.v1.Echo/Unary", MessageFrame(request));
        Assert.Equal(HttpStatusCode.OK, response.HttpStatus);
        Assert.Equal("application/grpc", response.ContentType);
        Assert.False(response.TrailersOnly);
        Assert.Equal("0", response.GrpcStatus);
        var expected = new EchoResponse { Message = "wire" }.ToByteArray();
        Assert.Equal([0, 0, 0, 0, (byte)expected.Length, .. expected], response.Body);
    }

    [Fact]
    public async Task ContentTypeGrpcProto_IsAccepted()
    {
        var response = await SendAsync("/echo.v1.Echo/Unary", MessageFrame(new EchoRequest()), "application/grpc+proto");
        Assert.Equal("0", response.GrpcStatus);
    }

    [Theory]
    [InlineData("application/json")]
    [InlineData("application/grpc+json")]
    [InlineData("text/plain")]
    public async Task UnsupportedContentType_Is415(string contentType)
    {
        var response = await SendAsync("/echo.v1.Echo/Unary", MessageFrame(new EchoRequest()), contentType);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.HttpStatus);
    }

    [Fact]
    public async Task CompressedFlagWithoutEncoding_IsInternal()
    {
        var response = await SendAsync("/echo.v1.Echo/Unary", [1, 0, 0, 0, 0]);
        Assert.Equal("13", response.GrpcStatus);
    }

    [Fact]
    public async Task CompressedWithUnsupportedEncoding_IsUnimplementedAndAdvertisesIdentity()
    {
        var response = await SendAsync("/echo.v1.Echo/Unary", [1, 0, 0, 0, 0], headers: h => h.TryAddWithoutValidation("grpc-encoding", "gzip"));
        Assert.Equal("12", response.GrpcStatus);
        Assert.Contains("gzip", response.GrpcMessage, StringComparison.Ordinal);
        Assert.Equal("identity", response.Header("grpc-accept-encoding"));
    }

    [Fact]
    public async Task EncodingHeaderWithUncompressedMessage_IsServed()
    {
        // grpc-encoding only says what compressed messages use; flag 0 messages are plain.
        var response = await SendAsync("/echo.v1.Echo/Unary", MessageFrame(new EchoRequest()), headers: h => h.TryAddWithoutValidation("grpc-encoding", "gzip"));
        Assert.Equal("0", response.GrpcStatus);
    }

    [Fact]
    public async Task MalformedProtobuf_IsInternal()
    {
        var response = await SendAsync("/echo.v1.Echo/Unary", [0, 0, 0, 0, 3, 0x0A, 50, 1]);
        Assert.Equal("13", response.GrpcStatus);
        Assert.Contains("EchoRequest", response.GrpcMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TwoRequestMessages_IsUnimplemented()
    {
        var frame = MessageFrame(new EchoRequest());
        var response = await SendAsync("/echo.v1.Echo/Unary", [.. frame, .. frame]);
        Assert.Equal("12", response.GrpcStatus);
        Assert.Contains("more than one message", response.GrpcMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoRequestMessage_IsUnimplemented()
    {
        var response = await SendAsync("/echo.v1.Echo/Stream", []);
        Assert.Equal("12", response.GrpcStatus);
        Assert.True(response.TrailersOnly);
    }

    [Theory]
    [InlineData("10s")]
    [InlineData("123456789S")]
    [InlineData("soon")]
    public async Task InvalidTimeoutHeader_IsInternal(string timeout)
    {
        var response = await SendAsync("/echo.v1.Echo/Unary", MessageFrame(new EchoRequest()), headers: h => h.TryAddWithoutValidation("grpc-timeout", timeout));
        Assert.Equal("13", response.GrpcStatus);
        Assert.Contains("grpc-timeout", response.GrpcMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServerEnforcesTheDeadline_EvenWhenTheHandlerIgnoresIt()
    {
        // No client-side timer here: the status must come from the server.
        const string key = "deaf-handler";
        var release = Server.Probe.HoldAtGate(key);
        var stopwatch = Stopwatch.StartNew();
        var response = await SendAsync("/echo.v1.Echo/Wait", MessageFrame(new EchoRequest { Message = key }),
            headers: h => h.TryAddWithoutValidation("grpc-timeout", "300m"));
        stopwatch.Stop();

        Assert.Equal("4", response.GrpcStatus);
        Assert.True(response.TrailersOnly);
        Assert.InRange(stopwatch.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5));

        // The handler is still blocked; once released its late write must be refused.
        release();
        var seen = await Server.Probe.WhenReported(key);
        Assert.Equal("write-refused", seen.Outcome);
    }

    [Fact]
    public async Task UnknownMethod_IsTrailersOnlyUnimplemented()
    {
        var response = await SendAsync("/echo.v1.Echo/Nope", MessageFrame(new EchoRequest()));
        Assert.Equal(HttpStatusCode.OK, response.HttpStatus);
        Assert.True(response.TrailersOnly);
        Assert.Equal("12", response.GrpcStatus);
        Assert.Empty(response.Body);
    }

    [Fact]
    public async Task NonGrpcRequestToUnknownPath_IsLeftToTheApp()
    {
        var response = await SendAsync("/echo.v1.Echo/Nope", [], "application/json");
        Assert.Equal(HttpStatusCode.NotFound, response.HttpStatus);
        Assert.Null(response.GrpcStatus);
    }

    [Fact]
    public async Task RestRouteOfTheSameShape_IsNotTakenOverByTheFallback()
    {
        var response = await SendAsync("/rest.v1/items", [], "application/json");
        Assert.Equal(HttpStatusCode.OK, response.HttpStatus);
        Assert.Equal("rest items", System.Text.Encoding.UTF8.GetString(response.Body));
    }

    [Fact]
    public async Task GetOnAGrpcMethod_IsNotServed()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(Server.Address, "/echo.v1.Echo/Unary"))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        using var response = await _http.SendAsync(request);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
    }

    private static byte[] MessageFrame(IMessage message)
    {
        var body = message.ToByteArray();
        return [0, (byte)(body.Length >> 24), (byte)(body.Length >> 16), (byte)(body.Length >> 8), (byte)body.Length, .. body];
    }

    private async Task<RawResponse> SendAsync(string path, byte[] body, string contentType = "application/grpc", Action<HttpRequestHeaders>? headers = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(Server.Address, path))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(body),
        };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        request.Headers.TE.ParseAdd("trailers");
        headers?.Invoke(request.Headers);
        using var response = await _http.SendAsync(request);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        return new RawResponse(response, bytes);
    }

    private sealed class RawResponse
    {
        private readonly Dictionary<string, string> _headers;
        private readonly Dictionary<string, string> _trailers;

        public RawResponse(HttpResponseMessage response, byte[] body)
        {
            HttpStatus = response.StatusCode;
            Body = body;
            ContentType = response.Content.Headers.ContentType?.ToString();
            _headers = response.Headers.NonValidated.ToDictionary(h => h.Key, h => h.Value.ToString());
            _trailers = response.TrailingHeaders.NonValidated.ToDictionary(h => h.Key, h => h.Value.ToString());
        }

        public HttpStatusCode HttpStatus { get; }
        public byte[] Body { get; }
        public string? ContentType { get; }
        public bool TrailersOnly => _headers.ContainsKey("grpc-status");
        public string? GrpcStatus => Header("grpc-status") ?? _trailers.GetValueOrDefault("grpc-status");
        public string? GrpcMessage => Uri.UnescapeDataString(Header("grpc-message") ?? _trailers.GetValueOrDefault("grpc-message") ?? "");

        public string? Header(string name) => _headers.GetValueOrDefault(name);
    }
}
