using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Cloud.ServiceDefaults;

/// <summary>
/// Turns a domain exception into a <c>google.rpc.Status</c>: the code, the message, and
/// structured details (<see cref="ErrorInfo"/> and friends) a client reads with
/// <c>RpcException.GetRpcStatus()</c>. Each process registers what its exceptions mean.
/// </summary>
public interface IRpcErrorMapper
{
    /// <summary>The status for <paramref name="exception"/> thrown by the call, or null when this mapper does not know it.</summary>
    Google.Rpc.Status? Map(Exception exception, ServerCallContext context);
}

/// <summary>
/// The one place where a server's exceptions become gRPC statuses, so that services only throw
/// what went wrong. Anything no mapper knows stays as it is: grpc-dotnet answers UNKNOWN and
/// logs it, never sending internals to the caller.
/// </summary>
public sealed class RpcErrorInterceptor(IEnumerable<IRpcErrorMapper> mappers) : Interceptor
{
    /// <summary>ErrorInfo.domain of every error this project reports.</summary>
    public const string Domain = "cloud";

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception e) when (ToRpc(e, context) is { } mapped)
        {
            throw mapped;
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception e) when (ToRpc(e, context) is { } mapped)
        {
            throw mapped;
        }
    }

    private RpcException? ToRpc(Exception e, ServerCallContext context)
    {
        if (e is RpcException)
        {
            return null;
        }
        foreach (var mapper in mappers)
        {
            if (mapper.Map(e, context) is { } status)
            {
                return status.ToRpcException();
            }
        }
        return null;
    }

    /// <summary>A status with one <see cref="ErrorInfo"/>: the reason and its metadata.</summary>
    public static Google.Rpc.Status Status(StatusCode code, string message, string reason, IEnumerable<KeyValuePair<string, string>>? metadata = null)
    {
        var info = new ErrorInfo { Reason = reason, Domain = Domain };
        foreach (var (key, value) in metadata ?? [])
        {
            info.Metadata[key] = value;
        }
        return new Google.Rpc.Status { Code = (int)code, Message = message, Details = { Any.Pack(info) } };
    }
}
