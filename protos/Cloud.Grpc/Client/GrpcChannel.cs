using System.Diagnostics;
using Google.Protobuf;

namespace Cloud.Grpc;

/// <summary>
/// A client connection to one gRPC server over HTTP/2: "http://" for cleartext HTTP/2 with prior
/// knowledge, "https://" for TLS with ALPN "h2". Thread-safe; create one per server and reuse it.
/// </summary>
public sealed class GrpcChannel : CallInvoker, IDisposable
{
    private readonly bool _disposeHttpClient;
    private bool _disposed;

    private GrpcChannel(Uri address, GrpcChannelOptions options)
    {
        Address = address;
        MaxReceiveMessageSize = options.MaxReceiveMessageSize;
        MaxSendMessageSize = options.MaxSendMessageSize;
        TimeProvider = options.TimeProvider ?? TimeProvider.System;

        if (options.HttpClient is not null)
        {
            HttpClient = options.HttpClient;
            _disposeHttpClient = options.DisposeHttpClient;
        }
        else if (options.HttpHandler is not null)
        {
            HttpClient = new HttpClient(options.HttpHandler, disposeHandler: options.DisposeHttpClient) { Timeout = Timeout.InfiniteTimeSpan };
            _disposeHttpClient = true;
        }
        else
        {
            // Activity propagation (traceparent) stays on: SocketsHttpHandler's default
            // ActivityHeadersPropagator is left in place.
            var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true };
            HttpClient = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
            _disposeHttpClient = true;
        }
    }

    /// <summary>The server's base address.</summary>
    public Uri Address { get; }

    internal HttpClient HttpClient { get; }
    internal int? MaxReceiveMessageSize { get; }
    internal int? MaxSendMessageSize { get; }
    internal TimeProvider TimeProvider { get; }

    public static GrpcChannel ForAddress(string address, GrpcChannelOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(address);
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri))
        {
            throw new ArgumentException($"'{address}' is not an absolute http:// or https:// address.", nameof(address));
        }
        return ForAddress(uri, options);
    }

    public static GrpcChannel ForAddress(Uri address, GrpcChannelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (!address.IsAbsoluteUri || (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"'{address}' is not an absolute http:// or https:// address.", nameof(address));
        }
        options ??= new GrpcChannelOptions();
        if (options.MaxReceiveMessageSize < 0 || options.MaxSendMessageSize < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "GrpcChannelOptions message size limits must not be negative.");
        }
        if (options.HttpClient is not null && options.HttpHandler is not null)
        {
            throw new ArgumentException("Set GrpcChannelOptions.HttpClient or GrpcChannelOptions.HttpHandler, not both.", nameof(options));
        }
        return new GrpcChannel(address, options);
    }

    public override async Task<TResponse> UnaryAsync<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions options)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(request);
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var call = new GrpcCall<TRequest, TResponse>(this, method, options);
        return await call.UnaryAsync(request).ConfigureAwait(false);
    }

    public override IAsyncServerStreamingCall<TResponse> ServerStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions options)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(request);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var caller = Activity.Current;
        var call = new GrpcCall<TRequest, TResponse>(this, method, options);
        call.StartStreaming(request);
        // The call's span was made current so the request carries it; the caller's own
        // context must not stay pointed at a span that outlives this method.
        Activity.Current = caller;
        return call;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        if (_disposeHttpClient)
        {
            HttpClient.Dispose();
        }
    }
}
