using System.Collections.Frozen;
using Cloud.Contracts.Trust;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Cloud.Agent.Identity;

/// <summary>
/// Who may call this agent. The listener takes only clients with a certificate from the cloud CA
/// (mutual TLS); this decides by the identity in it: the controller may call every method;
/// another node only what moves and image copies read from here, and health; anyone else
/// (a QEMU certificate, say) nothing.
/// </summary>
internal sealed class CallerAuthorization : Interceptor
{
    private static readonly FrozenSet<string> PeerMethods = new[]
    {
        "/cloud.agent.v1.NodeAgent/ListSnapshots",
        "/cloud.agent.v1.NodeAgent/ReadSnapshotFile",
        "/cloud.agent.v1.NodeAgent/ReadImage",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
    }.ToFrozenSet(StringComparer.Ordinal);

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(request, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(request, responseStream, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(requestStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(requestStream, responseStream, context);
    }

    private static void Authorize(ServerCallContext context)
    {
        var certificate = context.GetHttpContext().Connection.ClientCertificate
            ?? throw new RpcException(new Status(StatusCode.Unauthenticated, "Present a certificate from the cloud CA."));
        if (CloudIdentity.IsController(certificate))
        {
            return;
        }
        if (CloudIdentity.NodeOf(certificate) is { } node)
        {
            if (PeerMethods.Contains(context.Method))
            {
                return;
            }
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"Node {node} may not call {context.Method} on another node."));
        }
        throw new RpcException(new Status(StatusCode.PermissionDenied, $"The certificate ({CloudIdentity.IdentityUriOf(certificate) ?? certificate.Subject}) may not call this agent."));
    }
}
