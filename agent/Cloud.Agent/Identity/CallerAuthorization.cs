using System.Collections.Frozen;
using Cloud.Contracts.Agent.V1;
using Cloud.Contracts.Trust;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Cloud.Agent.Identity;

/// <summary>
/// Who may call this agent. The listener takes only clients with a certificate from the cloud CA
/// (mutual TLS); this decides by the identity in it: the controller may call every method;
/// another node only health, and what moves and image copies read from here, with the
/// controller's grant for that node and that VM or image (<see cref="PeerGrant"/>); anyone else
/// (a QEMU certificate, say) nothing.
/// </summary>
internal sealed class CallerAuthorization(NodeIdentity identity) : Interceptor
{
    private static readonly FrozenSet<string> HealthMethods = new[]
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
    }.ToFrozenSet(StringComparer.Ordinal);

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context, request);
        return continuation(request, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context, request);
        return continuation(request, responseStream, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context, null);
        return continuation(requestStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context, null);
        return continuation(requestStream, responseStream, context);
    }

    private void Authorize(ServerCallContext context, object? request)
    {
        var certificate = context.GetHttpContext().Connection.ClientCertificate
            ?? throw new RpcException(new Status(StatusCode.Unauthenticated, "Present a certificate from the cloud CA."));
        if (CloudIdentity.IsController(certificate))
        {
            return;
        }
        if (CloudIdentity.NodeOf(certificate) is { } node)
        {
            if (!HealthMethods.Contains(context.Method))
            {
                AuthorizePeerRead(node, context, request);
            }
            return;
        }
        throw new RpcException(new Status(StatusCode.PermissionDenied, $"The certificate ({CloudIdentity.IdentityUriOf(certificate) ?? certificate.Subject}) may not call this agent."));
    }

    /// <summary>A node reads a VM's snapshots or an image from here only with the controller's grant for exactly that.</summary>
    private void AuthorizePeerRead(string node, ServerCallContext context, object? request)
    {
        (string Kind, string Resource)? wanted = request switch
        {
            VmRef r when context.Method == "/cloud.agent.v1.NodeAgent/ListSnapshots" => (PeerGrant.VmKind, r.VmId),
            ReadSnapshotFileRequest r => (PeerGrant.VmKind, r.VmId),
            ReadStoredImageRequest r => (PeerGrant.ImageKind, r.ImageId),
            _ => null,
        };
        if (wanted is not { } read)
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"Node {node} may not call {context.Method} on another node."));
        }
        var grant = PeerGrant.Verify(context.RequestHeaders.GetValue(PeerGrant.Header), identity.Verifies, identity.Now, out var problem);
        if (grant is null || grant.Peer != node || grant.Holder != identity.NodeName || grant.Kind != read.Kind || grant.Resource != read.Resource)
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied,
                $"Node {node} may read {read.Kind} {read.Resource} here only with the controller's grant for it: {(grant is null ? problem : "the grant names something else.")}"));
        }
    }
}
