using System.Net;
using System.Net.Sockets;
using Cloud.Grpc.Wire;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace Cloud.Grpc.Server;

/// <summary>
/// The server side of one call on Kestrel: request parsing, response writing and the final
/// status. Writes and completion are serialized, because the deadline can complete the call
/// while the handler is still writing.
/// </summary>
internal sealed class ServerCall : ServerCallContext, IDisposable
{
    private static readonly TimeSpan MaxTimer = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    private readonly HttpContext _http;
    private readonly GrpcServerOptions _options;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _callCts;
    private readonly CancellationTokenSource? _deadlineCts;
    private readonly TaskCompletionSource _deadlineReached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Metadata? _requestHeaders;
    private bool _headersWritten;
    private bool _completed;

    private ServerCall(HttpContext http, string method, GrpcServerOptions options, ILogger logger, TimeSpan? timeout, TimeProvider timeProvider)
    {
        _http = http;
        _options = options;
        _logger = logger;
        Method = method;
        Deadline = DateTime.MaxValue;
        if (timeout is { } t)
        {
            Deadline = timeProvider.GetUtcNow().UtcDateTime + t;
            if (t < MaxTimer)
            {
                _deadlineCts = new CancellationTokenSource(t, timeProvider);
                _deadlineCts.Token.UnsafeRegister(static s => ((TaskCompletionSource)s!).TrySetResult(), _deadlineReached);
            }
        }
        _callCts = _deadlineCts is null
            ? CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted)
            : CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, _deadlineCts.Token);
    }

    public override string Method { get; }

    public override string Peer => FormatPeer(_http.Connection.RemoteIpAddress, _http.Connection.RemotePort);

    public override DateTime Deadline { get; }

    public override Metadata RequestHeaders => _requestHeaders ??= MetadataCodec.FromHeaders(
        _http.Request.Headers.Select(h => new KeyValuePair<string, IEnumerable<string>>(h.Key, h.Value.OfType<string>())));

    public override CancellationToken CancellationToken => _callCts.Token;

    public override Metadata ResponseTrailers { get; } = new();

    public override Status Status { get; set; } = Status.DefaultSuccess;

    /// <summary>Completes when the deadline passes; never when the call has none.</summary>
    internal Task DeadlineReached => _deadlineReached.Task;

    internal bool DeadlinePassed => _deadlineCts?.IsCancellationRequested == true;

    internal bool ClientGone => _http.RequestAborted.IsCancellationRequested;

    /// <summary>Status once the call has completed (what was sent, or what would have been).</summary>
    internal Status? FinalStatus { get; private set; }

    /// <summary>
    /// Starts the server side of a call from its headers. When they are invalid (a malformed
    /// grpc-timeout), <paramref name="error"/> is the status to answer with instead of running
    /// the handler.
    /// </summary>
    internal static ServerCall Create(HttpContext http, string method, GrpcServerOptions options, ILogger logger, TimeProvider timeProvider, out Status? error)
    {
        error = null;
        TimeSpan? timeout = null;
        var header = http.Request.Headers[GrpcProtocol.TimeoutHeader];
        if (!StringValues.IsNullOrEmpty(header))
        {
            if (header.Count == 1 && GrpcTimeout.TryParse(header.ToString(), out var parsed))
            {
                timeout = parsed;
            }
            else
            {
                error = new Status(StatusCode.Internal, $"Invalid grpc-timeout header '{header}'.");
            }
        }
        return new ServerCall(http, method, options, logger, timeout, timeProvider);
    }

    /// <summary>Reads the single request message of a unary or server-streaming call.</summary>
    internal async Task<TRequest> ReadSingleRequestAsync<TRequest>(MessageParser<TRequest> parser)
        where TRequest : IMessage<TRequest>
    {
        var reader = _http.Request.BodyReader;
        var options = new FrameReaderOptions(_options.MaxReceiveMessageSize, _http.Request.Headers[GrpcProtocol.EncodingHeader].FirstOrDefault(), StatusCode.Unimplemented);
        var (hasMessage, request) = await MessageFraming.ReadMessageAsync(reader, parser, options, CancellationToken).ConfigureAwait(false);
        if (!hasMessage)
        {
            // Request cardinality violation: UNIMPLEMENTED per statuscodes.md.
            throw new RpcException(StatusCode.Unimplemented, "The request ended without a message; this method takes exactly one.");
        }
        var (extra, _) = await MessageFraming.ReadMessageAsync(reader, parser, options, CancellationToken).ConfigureAwait(false);
        if (extra)
        {
            throw new RpcException(StatusCode.Unimplemented, "The request has more than one message; this method takes exactly one.");
        }
        return request;
    }

    internal async Task WriteMessageAsync(IMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        var frame = MessageFraming.Frame(message, _options.MaxSendMessageSize);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(CancellationToken, cancellationToken);
        await _writeLock.WaitAsync(linked.Token).ConfigureAwait(false);
        try
        {
            ThrowIfCompleted();
            _headersWritten = true;
            await _http.Response.BodyWriter.WriteAsync(frame, linked.Token).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public override async Task WriteResponseHeadersAsync(Metadata responseHeaders)
    {
        ArgumentNullException.ThrowIfNull(responseHeaders);
        await _writeLock.WaitAsync(CancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfCompleted();
            if (_headersWritten)
            {
                throw new InvalidOperationException("Response headers have already been sent; they can be written once, before any message.");
            }
            AddMetadata(_http.Response.Headers, responseHeaders);
            _headersWritten = true;
            await _http.Response.StartAsync(CancellationToken).ConfigureAwait(false);
            await _http.Response.BodyWriter.FlushAsync(CancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public override HttpContext GetHttpContext() => _http;

    /// <summary>
    /// Sends the status: in the trailers after headers/messages, or as a trailers-only response
    /// when nothing was sent yet. Only the first completion counts.
    /// </summary>
    internal async Task CompleteAsync(Status status, Metadata? extraTrailers)
    {
        await _writeLock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (_completed)
            {
                return;
            }
            _completed = true;
            FinalStatus = status;
            if (ClientGone)
            {
                // RST_STREAM already ended the stream; there is no one to send a status to.
                return;
            }
            var response = _http.Response;
            var trailersOnly = !response.HasStarted;
            void Add(string name, string value)
            {
                if (trailersOnly)
                {
                    response.Headers.Append(name, value);
                }
                else
                {
                    response.AppendTrailer(name, value);
                }
            }
            Add(GrpcProtocol.StatusHeader, StatusCodec.Format(status.StatusCode));
            if (!string.IsNullOrEmpty(status.Detail))
            {
                Add(GrpcProtocol.MessageHeader, PercentEncoding.Encode(status.Detail));
            }
            foreach (var entry in ResponseTrailers.Concat(extraTrailers ?? []).Where(e => !GrpcProtocol.IsReservedHeader(e.Key)))
            {
                Add(entry.Key, MetadataCodec.EncodeValue(entry));
            }
            await response.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or OperationCanceledException)
        {
            Log.StatusNotSent(_logger, Method, ex);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public void Dispose()
    {
        _callCts.Dispose();
        _deadlineCts?.Dispose();
        _writeLock.Dispose();
    }

    /// <summary>Prepares the response head and lifts Kestrel limits that gRPC enforces itself.</summary>
    internal static void PrepareResponse(HttpContext http)
    {
        // Message size limits replace Kestrel's request body limit, and a long server-streaming
        // call must not be cut off by the minimum request data rate.
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = null;
        }
        if (http.Features.Get<IHttpMinRequestBodyDataRateFeature>() is { } dataRate)
        {
            dataRate.MinDataRate = null;
        }
        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentType = GrpcProtocol.ContentType;
        http.Response.Headers[GrpcProtocol.AcceptEncodingHeader] = GrpcProtocol.IdentityEncoding;
    }

    private void ThrowIfCompleted()
    {
        if (_completed)
        {
            CancellationToken.ThrowIfCancellationRequested();
            throw new InvalidOperationException("The call has already completed.");
        }
    }

    private static void AddMetadata(IHeaderDictionary headers, Metadata metadata)
    {
        foreach (var entry in metadata)
        {
            if (GrpcProtocol.IsReservedHeader(entry.Key))
            {
                throw new InvalidOperationException($"Metadata key '{entry.Key}' is reserved by HTTP/2 or gRPC.");
            }
            headers.Append(entry.Key, MetadataCodec.EncodeValue(entry));
        }
    }

    private static string FormatPeer(IPAddress? address, int port) => address switch
    {
        null => "unknown",
        { AddressFamily: AddressFamily.InterNetworkV6 } => $"ipv6:[{address}]:{port}",
        _ => $"ipv4:{address}:{port}",
    };
}
