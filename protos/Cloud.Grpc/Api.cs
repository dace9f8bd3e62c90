// The public surface of the transport. Shapes follow grpc-dotnet (Grpc.Core.Api) so code
// written against it ports to Grpc.AspNetCore with namespace changes only.
using Google.Protobuf;
using Microsoft.AspNetCore.Http;

namespace Cloud.Grpc;

/// <summary>gRPC status codes, numbered as in the gRPC specification.</summary>
public enum StatusCode
{
    OK = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

/// <summary>The outcome of a call: a code and a human-readable detail.</summary>
public readonly record struct Status(StatusCode StatusCode, string Detail)
{
    public static readonly Status DefaultSuccess = new(StatusCode.OK, "");
    public override string ToString() => $"Status(StatusCode=\"{StatusCode}\", Detail=\"{Detail}\")";
}

/// <summary>Thrown by clients for a non-OK status, and by handlers to end a call with one.</summary>
public sealed class RpcException : Exception
{
    public RpcException(Status status, Metadata? trailers = null)
        : base(status.ToString())
    {
        Status = status;
        Trailers = trailers ?? new Metadata();
    }

    public RpcException(StatusCode code, string detail) : this(new Status(code, detail)) { }

    public Status Status { get; }
    public StatusCode StatusCode => Status.StatusCode;
    public Metadata Trailers { get; }
}

public enum MethodType
{
    Unary,
    ServerStreaming,
}

/// <summary>Describes one RPC: its path on the wire and how its messages are parsed.</summary>
public sealed class Method<TRequest, TResponse>
    where TRequest : IMessage<TRequest>
    where TResponse : IMessage<TResponse>
{
    public Method(MethodType type, string serviceName, string name, MessageParser<TRequest> requestParser, MessageParser<TResponse> responseParser)
    {
        Type = type;
        ServiceName = serviceName;
        Name = name;
        RequestParser = requestParser;
        ResponseParser = responseParser;
        FullName = $"/{serviceName}/{name}";
    }

    public MethodType Type { get; }
    public string ServiceName { get; }
    public string Name { get; }
    /// <summary>The HTTP/2 :path, "/package.Service/Method".</summary>
    public string FullName { get; }
    public MessageParser<TRequest> RequestParser { get; }
    public MessageParser<TResponse> ResponseParser { get; }
}

/// <summary>Per-call options of a client call.</summary>
public readonly record struct CallOptions(Metadata? Headers = null, DateTime? Deadline = null, CancellationToken CancellationToken = default)
{
    public CallOptions WithDeadline(DateTime deadline) => this with { Deadline = deadline };
    public CallOptions WithTimeout(TimeSpan timeout) => this with { Deadline = DateTime.UtcNow + timeout };
}

/// <summary>Reads the messages of a stream one at a time.</summary>
public interface IAsyncStreamReader<out T>
{
    T Current { get; }
    Task<bool> MoveNext(CancellationToken cancellationToken);
}

/// <summary>Writes the messages of a server stream.</summary>
public interface IServerStreamWriter<in T>
{
    Task WriteAsync(T message, CancellationToken cancellationToken = default);
}

/// <summary>A server-streaming call in progress on the client.</summary>
public interface IAsyncServerStreamingCall<out TResponse> : IDisposable
{
    IAsyncStreamReader<TResponse> ResponseStream { get; }
    Task<Metadata> ResponseHeadersAsync { get; }
    /// <summary>The final status; valid once the stream has ended.</summary>
    Status GetStatus();
    Metadata GetTrailers();
}

/// <summary>Starts calls. GrpcChannel is the HTTP/2 implementation.</summary>
public abstract class CallInvoker
{
    public abstract Task<TResponse> UnaryAsync<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions options)
        where TRequest : IMessage<TRequest>
        where TResponse : IMessage<TResponse>;

    public abstract IAsyncServerStreamingCall<TResponse> ServerStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions options)
        where TRequest : IMessage<TRequest>
        where TResponse : IMessage<TResponse>;
}

/// <summary>What a handler knows about the call it serves.</summary>
public abstract class ServerCallContext
{
    public abstract string Method { get; }
    public abstract string Peer { get; }
    /// <summary>From grpc-timeout; DateTime.MaxValue when the client set none.</summary>
    public abstract DateTime Deadline { get; }
    public abstract Metadata RequestHeaders { get; }
    /// <summary>Cancelled when the client cancels, the deadline passes or the connection drops.</summary>
    public abstract CancellationToken CancellationToken { get; }
    public abstract Metadata ResponseTrailers { get; }
    public abstract Status Status { get; set; }
    public abstract Task WriteResponseHeadersAsync(Metadata responseHeaders);
    public abstract HttpContext GetHttpContext();
}

public delegate Task<TResponse> UnaryServerMethod<TRequest, TResponse>(TRequest request, ServerCallContext context);

public delegate Task ServerStreamingServerMethod<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context);
