namespace Cloud.Grpc;

/// <summary>Settings of the gRPC server, set through <c>services.AddGrpc(options => ...)</c>.</summary>
public sealed class GrpcServerOptions
{
    /// <summary>4 MiB, the default receive limit of gRPC implementations.</summary>
    public const int DefaultMaxReceiveMessageSize = 4 * 1024 * 1024;

    /// <summary>Largest request message accepted, in bytes; null for no limit. Default 4 MiB.</summary>
    public int? MaxReceiveMessageSize { get; set; } = DefaultMaxReceiveMessageSize;

    /// <summary>Largest response message sent, in bytes; null (the default) for no limit.</summary>
    public int? MaxSendMessageSize { get; set; }

    /// <summary>
    /// When true, an unexpected exception's type and message go to the client in grpc-message.
    /// Off by default so that internals do not leak; the exception is always logged.
    /// </summary>
    public bool EnableDetailedErrors { get; set; }
}
