namespace Cloud.Grpc;

/// <summary>Settings of a <see cref="GrpcChannel"/>.</summary>
public sealed class GrpcChannelOptions
{
    /// <summary>4 MiB, the default receive limit of gRPC implementations.</summary>
    public const int DefaultMaxReceiveMessageSize = 4 * 1024 * 1024;

    /// <summary>
    /// The handler that sends requests, e.g. a SocketsHttpHandler with a custom certificate
    /// check. Default: a SocketsHttpHandler owned by the channel.
    /// </summary>
    public HttpMessageHandler? HttpHandler { get; set; }

    /// <summary>A ready HttpClient to use instead of <see cref="HttpHandler"/>.</summary>
    public HttpClient? HttpClient { get; set; }

    /// <summary>Largest response message accepted, in bytes; null for no limit. Default 4 MiB.</summary>
    public int? MaxReceiveMessageSize { get; set; } = DefaultMaxReceiveMessageSize;

    /// <summary>Largest request message sent, in bytes; null (the default) for no limit.</summary>
    public int? MaxSendMessageSize { get; set; }

    /// <summary>
    /// Whether disposing the channel disposes the <see cref="HttpClient"/> or
    /// <see cref="HttpHandler"/> given here. A handler the channel creates itself is always disposed.
    /// </summary>
    public bool DisposeHttpClient { get; set; }

    /// <summary>Clock for deadlines. Default: the system clock.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;
}
