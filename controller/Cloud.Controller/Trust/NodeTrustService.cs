using Cloud.Controller.Auth;
using Cloud.Contracts.Node.V1;
using Grpc.Core;
using Microsoft.AspNetCore.Authorization;

namespace Cloud.Controller.Trust;

/// <summary>
/// cloud.node.v1.NodeTrust on the node port: a node joins with a join token made for its name,
/// and renews with the certificate it holds. Renewal names the same node as the certificate
/// presented, so no node can get a certificate for another.
/// </summary>
[Authorize(Policy = CloudPolicies.Node)]
internal sealed partial class NodeTrustService(JoinTokens joinTokens, NodeCertificateIssuer issuer, ILogger<NodeTrustService> logger) : NodeTrust.NodeTrustBase
{
    /// <summary>A node joining is recorded in the audit trail, refused attempts above all.</summary>
    [AllowAnonymous]
    [Audit.Audited]
    public override async Task<NodeCertificates> Join(JoinRequest request, ServerCallContext context)
    {
        Vms.VmValidation.RequireName(request.NodeName, "node_name");
        if (request.Requests is null)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "requests is required."));
        }
        if (!await joinTokens.SpendAsync(request.JoinToken, request.NodeName, context.CancellationToken))
        {
            Log.JoinRefused(logger, request.NodeName, context.Peer);
            throw new RpcException(new Status(StatusCode.Unauthenticated,
                $"The join token is unknown, already used, expired, or made for another node than {request.NodeName}: ask an operator for a new one (cloudctl node join-token {request.NodeName})."));
        }
        var issued = await issuer.IssueAsync(request.NodeName, request.Requests, context.CancellationToken);
        Log.Joined(logger, request.NodeName, context.Peer);
        return issued;
    }

    public override Task<NodeCertificates> Renew(RenewRequest request, ServerCallContext context)
        => request.Requests is null
            ? throw new RpcException(new Status(StatusCode.InvalidArgument, "requests is required."))
            : issuer.IssueAsync(ApiCallers.NodeOf(context), request.Requests, context.CancellationToken);

    private static partial class Log
    {
        [LoggerMessage(EventId = 4101, Level = LogLevel.Information, Message = "Node {Node} joined from {Peer}")]
        public static partial void Joined(ILogger logger, string node, string peer);

        [LoggerMessage(EventId = 4102, Level = LogLevel.Warning, Message = "Join as node {Node} from {Peer} refused: bad join token")]
        public static partial void JoinRefused(ILogger logger, string node, string peer);
    }
}
