using System.Security.Claims;
using Grpc.Core;

namespace Cloud.Controller.Auth;

/// <summary>The authenticated principal of a request, as the services know their caller.</summary>
internal static class ApiCallers
{
    private const string ProjectClaim = "cloud:project";
    private const string RoleClaim = "cloud:role";
    private const string TokenNameClaim = "cloud:token-name";

    /// <summary>The role of an agent's certificate: node registry, image pulls and renewals, never the API.</summary>
    public const string NodeRole = "node";

    public static ClaimsPrincipal ToPrincipal(Caller caller)
    {
        List<Claim> claims = [new(ClaimTypes.NameIdentifier, caller.Subject), new(ProjectClaim, caller.ProjectId), new(RoleClaim, caller.Role)];
        if (caller.TokenName is { } name)
        {
            claims.Add(new Claim(TokenNameClaim, name));
        }
        return new(new ClaimsIdentity(claims, BearerTokenHandler.SchemeName, ClaimTypes.NameIdentifier, RoleClaim));
    }

    public static ClaimsPrincipal NodePrincipal(string node, string scheme)
        => new(new ClaimsIdentity([new Claim(ClaimTypes.NameIdentifier, node), new Claim(RoleClaim, NodeRole)], scheme, ClaimTypes.NameIdentifier, RoleClaim));

    /// <summary>The node whose certificate made this call; only endpoints under the node policy ask.</summary>
    public static string NodeOf(ServerCallContext context)
        => context.GetHttpContext().User is { } user && user.IsInRole(NodeRole)
            ? user.FindFirstValue(ClaimTypes.NameIdentifier)!
            : throw new InvalidOperationException("This endpoint reads a node but does not require the 'node' policy.");

    /// <summary>True for an API caller (operator, member, reader); the agents' token is not one.</summary>
    public static bool IsApiCaller(ClaimsPrincipal user) => user.FindFirst(ProjectClaim) is not null;

    /// <summary>True for an API caller whose role may change things (operator, member), never a reader.</summary>
    public static bool CanWrite(ClaimsPrincipal user) => IsApiCaller(user) && From(user).CanWrite;

    public static Caller Of(HttpContext http) => From(http.User);

    /// <summary>The API caller <paramref name="user"/> is, or null for the agents' token and for no token at all.</summary>
    public static Caller? Find(ClaimsPrincipal user) => IsApiCaller(user) ? From(user) : null;

    /// <summary>True for the agents' token.</summary>
    public static bool IsNode(ClaimsPrincipal user) => user.IsInRole(NodeRole);

    public static Caller Of(ServerCallContext context) => From(context.GetHttpContext().User);

    private static Caller From(ClaimsPrincipal user)
        => IsApiCaller(user)
            ? new(user.FindFirstValue(ClaimTypes.NameIdentifier)!, user.FindFirstValue(ProjectClaim)!, user.FindFirstValue(RoleClaim)!, user.FindFirstValue(TokenNameClaim))
            // Only an endpoint mapped without the api policy gets here: a bug, never a guest.
            : throw new InvalidOperationException("This endpoint reads an API caller but does not require the 'api' policy.");
}

/// <summary>Who may call what: one set of policies for REST and gRPC.</summary>
internal static class CloudPolicies
{
    /// <summary>Tenants' and operators' API: any valid API token.</summary>
    public const string Api = "api";

    /// <summary>
    /// Mutations: an API token that may write, so never a reader's. Checked by the framework
    /// before the endpoint runs, so a reader's refusal comes before any lookup and reveals nothing.
    /// </summary>
    public const string Write = "write";

    /// <summary>What agents call (node registry, image pulls, renewals): a node's certificate from the cloud CA.</summary>
    public const string Node = "node";

    public static IServiceCollection AddCloudAuthentication(this IServiceCollection services)
    {
        services.AddSingleton<TokenAuthenticator>();
        services.AddAuthentication(BearerTokenHandler.SchemeName)
            .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, BearerTokenHandler>(BearerTokenHandler.SchemeName, null)
            .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, Trust.NodeCertificateHandler>(Trust.NodeCertificateHandler.SchemeName, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(Api, policy => policy.RequireAuthenticatedUser().RequireAssertion(c => ApiCallers.IsApiCaller(c.User)))
            .AddPolicy(Write, policy => policy.RequireAuthenticatedUser().RequireAssertion(c => ApiCallers.CanWrite(c.User)))
            .AddPolicy(Node, policy => policy.AddAuthenticationSchemes(Trust.NodeCertificateHandler.SchemeName).RequireAuthenticatedUser().RequireRole(ApiCallers.NodeRole));
        return services;
    }
}
