using System.Security.Claims;
using System.Text.Encodings.Web;
using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Contracts.Trust;
using Grpc.Core;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Trust;

/// <summary>
/// Authenticates agents on the node port by their client certificate: Kestrel has already
/// checked that it chains to the cloud CA and is valid now; this reads the node it speaks for
/// (its cloud://node/NAME identity) and refuses a revoked one. A QEMU certificate, or the
/// controller's own, names no node and is refused.
/// </summary>
internal sealed class NodeCertificateHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    RevokedCertificates revoked) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "NodeCertificate";

    private static readonly object FailureKey = new();

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var certificate = Context.Connection.ClientCertificate;
        if (certificate is null)
        {
            return AuthenticateResult.NoResult();
        }
        if (CloudIdentity.NodeOf(certificate) is not { } node)
        {
            return Fail("The client certificate is not a node's.");
        }
        if (await revoked.IsRevokedAsync(certificate.SerialNumber, Context.RequestAborted))
        {
            return Fail($"The certificate of node {node} is revoked: the node was deleted.");
        }
        return AuthenticateResult.Success(new AuthenticationTicket(ApiCallers.NodePrincipal(node, SchemeName), SchemeName));
    }

    private AuthenticateResult Fail(string reason)
    {
        Context.Items[FailureKey] = reason;
        return AuthenticateResult.Fail(reason);
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
        => ApiRefusal.WriteAsync(Context, StatusCode.Unauthenticated, Context.Items[FailureKey] as string
            ?? "Present this node's certificate from the cloud CA (join with a join token to get one).");

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
        => ApiRefusal.WriteAsync(Context, StatusCode.PermissionDenied, "This certificate may not call this method.");
}
