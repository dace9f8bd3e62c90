using System.Security.Claims;
using System.Text.Encodings.Web;
using Cloud.Controller.Api;
using Grpc.Core;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Auth;

/// <summary>
/// ASP.NET Core authentication for every controller endpoint, REST and gRPC alike:
/// "Authorization: Bearer ..." is an API token (operator, member or reader of a project) or the
/// agents' token. Who may call what is then the policies' business (<see cref="CloudPolicies"/>).
/// A refusal answers in the caller's own protocol: problem details over REST, a gRPC status
/// (trailers-only) over gRPC, with the same code either way.
/// </summary>
internal sealed class BearerTokenHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    TokenAuthenticator tokens) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Bearer";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? authorization = Request.Headers.Authorization;
        if (string.IsNullOrEmpty(authorization))
        {
            return AuthenticateResult.NoResult();
        }
        var principal = await tokens.AuthenticateApiAsync(authorization, Context.RequestAborted) is { } caller
            ? ApiCallers.ToPrincipal(caller)
            : tokens.IsAgentToken(authorization) ? ApiCallers.NodePrincipal() : null;
        return principal is null
            ? AuthenticateResult.Fail("The bearer token is unknown, revoked or expired.")
            : AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
        => RefuseAsync(StatusCode.Unauthenticated, IsGrpc
            ? "Send a valid API token in the authorization metadata: Bearer <token>."
            : "Send a valid API token: Authorization: Bearer <token>.");

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
        => RefuseAsync(StatusCode.PermissionDenied, "This token may not call this endpoint.");

    private bool IsGrpc => Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true;

    private async Task RefuseAsync(StatusCode code, string message)
    {
        if (IsGrpc)
        {
            // A trailers-only response: HTTP 200 whose headers carry the status, as every gRPC
            // client reads it (a bare 401 would reach the client as "Bad gRPC response").
            Response.StatusCode = StatusCodes.Status200OK;
            Response.ContentType = "application/grpc";
            Response.Headers["grpc-status"] = ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture);
            Response.Headers["grpc-message"] = Uri.EscapeDataString(message);
            return;
        }
        Response.StatusCode = ApiException.HttpStatus(code);
        if (code == StatusCode.Unauthenticated)
        {
            Response.Headers.WWWAuthenticate = SchemeName;
        }
        await ApiErrorFilter.Problem(new ApiException(code, message)).ExecuteAsync(Context);
    }
}
