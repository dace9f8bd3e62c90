using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using Cloud.Grpc.Wire;
using Google.Protobuf;

namespace Cloud.Grpc;

/// <summary>
/// One client call: sends the request, reads headers, messages and trailers, and turns every
/// way a call can end (trailers, HTTP errors, resets, deadline, cancellation) into a Status.
/// </summary>
internal sealed class GrpcCall<TRequest, TResponse> : IAsyncServerStreamingCall<TResponse>, IAsyncStreamReader<TResponse>
    where TRequest : IMessage<TRequest>
    where TResponse : IMessage<TResponse>
{
    // CancellationTokenSource timers cannot exceed about 49 days; a later deadline is not timed.
    private static readonly TimeSpan MaxTimer = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    private readonly GrpcChannel _channel;
    private readonly Method<TRequest, TResponse> _method;
    private readonly CallOptions _options;
    private readonly DateTime? _deadline;
    private readonly CancellationTokenSource _callCts;
    private readonly CancellationTokenSource? _deadlineCts;
    private readonly TaskCompletionSource<Metadata> _headers = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long _startTimestamp;
    private readonly Activity? _activity;
    private readonly Lock _finishLock = new();

    private HttpRequestMessage? _request;
    private HttpResponseMessage? _response;
    private PipeReader? _reader;
    private Task? _startTask;
    private Status? _status;
    private Metadata _trailers = new();
    private bool _reading;
    private bool _disposed;

    public GrpcCall(GrpcChannel channel, Method<TRequest, TResponse> method, CallOptions options)
    {
        _channel = channel;
        _method = method;
        _options = options;
        _startTimestamp = channel.TimeProvider.GetTimestamp();
        _deadline = NormalizeDeadline(options.Deadline);
        if (_deadline is { } deadline)
        {
            var remaining = deadline - channel.TimeProvider.GetUtcNow().UtcDateTime;
            if (remaining < MaxTimer)
            {
                _deadlineCts = new CancellationTokenSource(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, channel.TimeProvider);
            }
        }
        _callCts = _deadlineCts is null
            ? CancellationTokenSource.CreateLinkedTokenSource(options.CancellationToken)
            : CancellationTokenSource.CreateLinkedTokenSource(options.CancellationToken, _deadlineCts.Token);
        // Once headers have arrived SocketsHttpHandler no longer watches the send token; disposing
        // the response is what resets the stream (RST_STREAM CANCEL), so cancellation does that.
        _callCts.Token.UnsafeRegister(static s => ((GrpcCall<TRequest, TResponse>)s!).AbortResponse(), this);
        _activity = GrpcTelemetry.StartClient(method.ServiceName, method.Name, channel.Address);
    }

    public IAsyncStreamReader<TResponse> ResponseStream => this;

    public Task<Metadata> ResponseHeadersAsync => _headers.Task;

    public TResponse Current { get; private set; } = default!;

    public Status GetStatus()
        => _status ?? throw new InvalidOperationException("The call has not finished; read the response stream to its end first.");

    public Metadata GetTrailers()
        => _status is not null ? _trailers : throw new InvalidOperationException("The call has not finished; read the response stream to its end first.");

    public async Task<TResponse> UnaryAsync(TRequest request)
    {
        await StartAsync(request).ConfigureAwait(false);
        ThrowIfFailed();
        try
        {
            var options = ReaderOptions();
            var (hasMessage, message) = await MessageFraming.ReadMessageAsync(_reader!, _method.ResponseParser, options, _callCts.Token).ConfigureAwait(false);
            if (hasMessage)
            {
                var (extra, _) = await MessageFraming.ReadMessageAsync(_reader!, _method.ResponseParser, options, _callCts.Token).ConfigureAwait(false);
                if (extra)
                {
                    // Response cardinality violation: UNIMPLEMENTED per statuscodes.md.
                    Finish(new Status(StatusCode.Unimplemented, "The server sent more than one response message for a unary call."), new Metadata());
                    ThrowIfFailed();
                }
            }
            var (status, trailers) = ReadTrailers();
            if (status.StatusCode == StatusCode.OK && !hasMessage)
            {
                status = new Status(StatusCode.Unimplemented, "The server ended a unary call with status OK but no response message.");
            }
            Finish(status, trailers);
            ThrowIfFailed();
            return message;
        }
        catch (Exception ex) when (ex is not RpcException || _status is null)
        {
            Finish(MapException(ex), new Metadata());
            ThrowIfFailed();
            throw;
        }
    }

    public void StartStreaming(TRequest request) => _startTask = StartAsync(request);

    public async Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        if (_reading)
        {
            throw new InvalidOperationException("MoveNext is already in progress; read one message at a time.");
        }
        _reading = true;
        try
        {
            await _startTask!.ConfigureAwait(false);
            if (_status is not null)
            {
                ThrowIfFailed();
                return false;
            }
            // Cancelling a read cancels the call, as in other gRPC clients.
            using var registration = cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _callCts);
            try
            {
                var (hasMessage, message) = await MessageFraming.ReadMessageAsync(_reader!, _method.ResponseParser, ReaderOptions(), _callCts.Token).ConfigureAwait(false);
                if (hasMessage)
                {
                    Current = message;
                    return true;
                }
                var (status, trailers) = ReadTrailers();
                Finish(status, trailers);
            }
            catch (Exception ex) when (ex is not RpcException || _status is null)
            {
                Finish(MapException(ex), new Metadata());
            }
            ThrowIfFailed();
            return false;
        }
        finally
        {
            _reading = false;
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        if (_status is null)
        {
            // Aborting the request makes SocketsHttpHandler send RST_STREAM(CANCEL).
            Finish(new Status(StatusCode.Cancelled, "The call was disposed before it completed."), new Metadata());
        }
        _callCts.Cancel();
        if (!_reading)
        {
            // Returns the pipe's pooled buffers; a read still in flight fails on the aborted
            // response instead and its buffers go with the response.
            _reader?.Complete();
        }
        _response?.Dispose();
        _request?.Dispose();
        _callCts.Dispose();
        _deadlineCts?.Dispose();
    }

    private async Task StartAsync(TRequest request)
    {
        try
        {
            var frame = MessageFraming.Frame(request, _channel.MaxSendMessageSize);
            if (_deadline is { } deadline && deadline <= _channel.TimeProvider.GetUtcNow().UtcDateTime)
            {
                Finish(new Status(StatusCode.DeadlineExceeded, "The deadline passed before the call started."), new Metadata());
                return;
            }
            // The request lives as long as the call: its body may still be going out while the
            // response is read (e.g. a server that refuses a large message early).
            _request = BuildRequest(frame);
            var response = await _channel.HttpClient.SendAsync(_request, HttpCompletionOption.ResponseHeadersRead, _callCts.Token).ConfigureAwait(false);
            Volatile.Write(ref _response, response);
            if (_callCts.IsCancellationRequested)
            {
                AbortResponse();
            }
            if (ReadHeaders(response) is not null)
            {
                return;
            }
            var stream = await response.Content.ReadAsStreamAsync(_callCts.Token).ConfigureAwait(false);
            _reader = PipeReader.Create(stream);
        }
        catch (Exception ex)
        {
            Finish(ex is RpcException rpc ? rpc.Status : MapException(ex), new Metadata());
        }
    }

    private void CancelCall()
    {
        try
        {
            _callCts.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Disposed concurrently: the response is being disposed anyway.
        }
    }

    private void AbortResponse() => Volatile.Read(ref _response)?.Dispose();

    private HttpRequestMessage BuildRequest(byte[] frame)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_channel.Address, _method.FullName))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(frame),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue(GrpcProtocol.ContentType);
        request.Headers.TE.Add(new TransferCodingWithQualityHeaderValue(GrpcProtocol.TeTrailers));
        if (_deadline is { } deadline)
        {
            var remaining = deadline - _channel.TimeProvider.GetUtcNow().UtcDateTime;
            request.Headers.TryAddWithoutValidation(GrpcProtocol.TimeoutHeader, GrpcTimeout.Encode(remaining > TimeSpan.Zero ? remaining : TimeSpan.FromTicks(1)));
        }
        var userAgent = GrpcProtocol.UserAgent;
        if (_options.Headers is { } headers)
        {
            foreach (var entry in headers)
            {
                if (entry.Key == "user-agent")
                {
                    userAgent = entry.Value + " " + GrpcProtocol.UserAgent;
                    continue;
                }
                if (GrpcProtocol.IsReservedHeader(entry.Key))
                {
                    throw new RpcException(StatusCode.Internal, $"Metadata key '{entry.Key}' is reserved by HTTP/2 or gRPC and cannot be sent.");
                }
                request.Headers.TryAddWithoutValidation(entry.Key, MetadataCodec.EncodeValue(entry));
            }
        }
        request.Headers.TryAddWithoutValidation("user-agent", userAgent);
        return request;
    }

    /// <summary>Checks the response head; returns the final status when the call already ended.</summary>
    private Status? ReadHeaders(HttpResponseMessage response)
    {
        if (response.StatusCode != HttpStatusCode.OK)
        {
            var code = StatusCodec.FromHttpStatus(response.StatusCode);
            Finish(new Status(code, $"Bad gRPC response. HTTP status code: {(int)response.StatusCode}."), new Metadata());
            return _status;
        }
        var headerMetadata = MetadataCodec.FromHeaders(Enumerate(response.Headers));
        if (HeaderValue(response.Headers, GrpcProtocol.StatusHeader) is { } trailersOnlyStatus)
        {
            // Trailers-Only: the status came in the only HEADERS frame.
            _headers.TrySetResult(headerMetadata);
            var status = StatusCodec.Parse(trailersOnlyStatus, HeaderValue(response.Headers, GrpcProtocol.MessageHeader));
            if (status.StatusCode == StatusCode.OK && _method.Type == MethodType.Unary)
            {
                status = new Status(StatusCode.Unimplemented, "The server ended a unary call with status OK but no response message.");
            }
            Finish(status, headerMetadata);
            return _status;
        }
        var contentType = response.Content.Headers.ContentType?.ToString();
        if (!GrpcProtocol.LooksLikeGrpc(contentType))
        {
            Finish(new Status(StatusCode.Unknown, $"Bad gRPC response. Invalid content-type value: '{contentType}'."), new Metadata());
            return _status;
        }
        _headers.TrySetResult(headerMetadata);
        return null;
    }

    private (Status Status, Metadata Trailers) ReadTrailers()
    {
        var trailers = _response!.TrailingHeaders;
        var metadata = MetadataCodec.FromHeaders(Enumerate(trailers));
        var status = HeaderValue(trailers, GrpcProtocol.StatusHeader) is { } grpcStatus
            ? StatusCodec.Parse(grpcStatus, HeaderValue(trailers, GrpcProtocol.MessageHeader))
            : new Status(StatusCode.Unknown, "The response ended without a grpc-status trailer.");
        return (status, metadata);
    }

    private FrameReaderOptions ReaderOptions()
        => new(_channel.MaxReceiveMessageSize, HeaderValue(_response!.Headers, GrpcProtocol.EncodingHeader), StatusCode.Internal);

    private Status MapException(Exception ex)
    {
        if (DeadlinePassed())
        {
            return new Status(StatusCode.DeadlineExceeded, "Deadline exceeded.");
        }
        if (ex is RpcException rpc)
        {
            return rpc.Status;
        }
        if (ex is OperationCanceledException || _callCts.IsCancellationRequested)
        {
            return new Status(StatusCode.Cancelled, "The call was cancelled by the client.");
        }
        for (var e = ex; e is not null; e = e.InnerException)
        {
            if (e is HttpProtocolException protocol)
            {
                return FromResetCode(protocol.ErrorCode);
            }
        }
        return ex switch
        {
            HttpRequestException request => new Status(StatusCode.Unavailable, $"Error connecting to {_channel.Address}: {request.Message}"),
            IOException io => new Status(StatusCode.Unavailable, $"The connection broke during the call: {io.Message}"),
            _ => new Status(StatusCode.Internal, $"Error in the gRPC client: {ex.GetType().Name}: {ex.Message}"),
        };
    }

    /// <summary>RST_STREAM error codes to gRPC status codes (PROTOCOL-HTTP2.md, "Errors").</summary>
    private static Status FromResetCode(long code) => code switch
    {
        0x7 => new Status(StatusCode.Unavailable, "The server refused the stream (REFUSED_STREAM); no processing occurred."),
        0x8 => new Status(StatusCode.Cancelled, "The server cancelled the stream (RST_STREAM CANCEL)."),
        0xB => new Status(StatusCode.ResourceExhausted, "The server asked to reduce load (ENHANCE_YOUR_CALM)."),
        0xC => new Status(StatusCode.PermissionDenied, "The connection is not secure enough for this call (INADEQUATE_SECURITY)."),
        _ => new Status(StatusCode.Internal, $"The stream was reset with HTTP/2 error code 0x{code:X}."),
    };

    private bool DeadlinePassed()
        => _deadline is { } deadline && (_deadlineCts?.IsCancellationRequested == true || deadline <= _channel.TimeProvider.GetUtcNow().UtcDateTime);

    /// <summary>Records the final status once; later outcomes (e.g. a dispose after a failure) are ignored.</summary>
    private void Finish(Status status, Metadata trailers)
    {
        lock (_finishLock)
        {
            if (_status is not null)
            {
                return;
            }
            // A CANCELLED call whose deadline has passed is reported as DEADLINE_EXCEEDED,
            // generated locally (PROTOCOL-HTTP2.md, "Client Cancellation").
            if (status.StatusCode == StatusCode.Cancelled && DeadlinePassed())
            {
                status = new Status(StatusCode.DeadlineExceeded, "Deadline exceeded.");
                trailers = new Metadata();
            }
            _status = status;
            _trailers = trailers;
            if (_headers.TrySetException(new RpcException(status, trailers)))
            {
                // Nobody may ever await the headers; mark the exception observed.
                _ = _headers.Task.Exception;
            }
            var elapsed = _channel.TimeProvider.GetElapsedTime(_startTimestamp);
            GrpcTelemetry.RecordClient(_activity, _method.ServiceName, _method.Name, status.StatusCode, elapsed);
        }
        if (status.StatusCode != StatusCode.OK && !_disposed)
        {
            // A call that failed on this side (size limit, bad frame) must not leave the stream open.
            CancelCall();
        }
    }

    private void ThrowIfFailed()
    {
        if (_status is { StatusCode: not StatusCode.OK } status)
        {
            throw new RpcException(status, _trailers);
        }
    }

    private static DateTime? NormalizeDeadline(DateTime? deadline) => deadline switch
    {
        null => null,
        { } d when d == DateTime.MaxValue => null,
        { Kind: DateTimeKind.Local } d => d.ToUniversalTime(),
        { } d => DateTime.SpecifyKind(d, DateTimeKind.Utc),
    };

    private static string? HeaderValue(HttpHeaders headers, string name)
        => headers.NonValidated.TryGetValues(name, out var values) && values.Count > 0 ? values.ToString() : null;

    private static IEnumerable<KeyValuePair<string, IEnumerable<string>>> Enumerate(HttpHeaders headers)
    {
        foreach (var (name, values) in headers.NonValidated)
        {
            yield return new KeyValuePair<string, IEnumerable<string>>(name, values);
        }
    }
}
