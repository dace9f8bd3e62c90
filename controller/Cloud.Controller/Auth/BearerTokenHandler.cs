using System.Security.Claims;
using System.Text.Encodings.Web;
using Cloud.Controller.Api;
using Cloud.Controller.Limits;
using Grpc.Core;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Auth;

/// <summary>
/// ASP.NET Core authentication for every controller endpoint, REST and gRPC alike:
/// "Authorization: Bearer ..." is an API token (operator, member or reader of a project); agents
/// authenticate by certificate instead (Trust/NodeCertificateHandler). Who may call what is then the policies' business (<see cref="CloudPolicies"/>).
/// A refusal answers in the caller's own protocol: problem details over REST, a gRPC status
/// (trailers-only) over gRPC, with the same code either way. Failed authentications are counted
/// per source address (<see cref="FailedAuthThrottle"/>); past the limit, a token not known to be
/// valid is refused with RESOURCE_EXHAUSTED before the database is asked.
/// </summary>
internal sealed class BearerTokenHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    TokenAuthenticator tokens,
    FailedAuthThrottle failedAuth) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Bearer";

    private static readonly object ThrottledKey = new();

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? authorization = Request.Headers.Authorization;
        if (string.IsNullOrEmpty(authorization))
        {
            return AuthenticateResult.NoResult();
        }
        var address = Context.Connection.RemoteIpAddress;
        if (address is not null && failedAuth.RetryAfter(address) is { } wait && !tokens.IsKnownValid(authorization))
        {
            Context.Items[ThrottledKey] = wait;
            return AuthenticateResult.Fail("Too many failed authentications from this address.");
        }
        var principal = await tokens.AuthenticateApiAsync(authorization, Context.RequestAborted) is { } caller
            ? ApiCallers.ToPrincipal(caller)
            : null;
        if (principal is null && address is not null)
        {
            failedAuth.RecordFailure(address);
        }
        return principal is null
            ? AuthenticateResult.Fail("The bearer token is unknown, revoked or expired.")
            : AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
        => Context.Items[ThrottledKey] is TimeSpan wait
            ? ApiRefusal.WriteAsync(Context, StatusCode.ResourceExhausted,
                "Too many failed authentications from this address: retry after the time in Retry-After.", "AUTH_THROTTLED", wait)
            : RefuseAsync(StatusCode.Unauthenticated, ApiRefusal.IsGrpc(Request)
            ? "Send a valid API token in the authorization metadata: Bearer <token>."
            : "Send a valid API token: Authorization: Bearer <token>.");

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
        => RefuseAsync(StatusCode.PermissionDenied, "This token may not call this endpoint.");

    private async Task RefuseAsync(StatusCode code, string message)
    {
        if (code == StatusCode.Unauthenticated && !ApiRefusal.IsGrpc(Request))
        {
            Response.Headers.WWWAuthenticate = SchemeName;
        }
        await ApiRefusal.WriteAsync(Context, code, message);
    }
}
