using Microsoft.Extensions.Logging;

namespace Cloud.Grpc.Server;

/// <summary>Log messages of the server side; event ids 1-99.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Error, Message = "gRPC handler for {Method} threw an exception")]
    public static partial void HandlerFailed(ILogger logger, string method, Exception exception);

    [LoggerMessage(EventId = 2, Level = LogLevel.Debug, Message = "gRPC call {Method} ended with {StatusCode}: {Detail}")]
    public static partial void CallFailed(ILogger logger, string method, StatusCode statusCode, string detail);

    [LoggerMessage(EventId = 3, Level = LogLevel.Debug, Message = "gRPC call {Method} exceeded its deadline")]
    public static partial void DeadlineExceeded(ILogger logger, string method);

    [LoggerMessage(EventId = 4, Level = LogLevel.Debug, Message = "Could not send the status of gRPC call {Method}; the client is gone")]
    public static partial void StatusNotSent(ILogger logger, string method, Exception exception);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Refused a request to {Path} with content-type '{ContentType}'")]
    public static partial void UnsupportedContentType(ILogger logger, string path, string? contentType);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Refused a gRPC request to {Path} over {Protocol}; gRPC needs HTTP/2")]
    public static partial void UnsupportedProtocol(ILogger logger, string path, string protocol);

    [LoggerMessage(EventId = 7, Level = LogLevel.Debug, Message = "No gRPC method at {Path}")]
    public static partial void UnknownMethod(ILogger logger, string path);
}
