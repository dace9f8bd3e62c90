using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Auth;

/// <summary>Who the caller is once its bearer token checked out.</summary>
internal sealed record Caller(string Subject, string ProjectId, bool IsOperator);

/// <summary>API tokens. Section "Auth".</summary>
public sealed class AuthOptions
{
    public const string SectionName = "Auth";

    /// <summary>SHA-256 (hex) of each operator token. Only hashes are configured, never tokens.</summary>
    public IList<string> OperatorTokenSha256 { get; } = [];

    /// <summary>SHA-256 (hex) of the token agents present to the node registry; none means the registry is open (loopback dev).</summary>
    public string? AgentTokenSha256 { get; set; }
}

/// <summary>Checks "Authorization: Bearer ..." against hashed tokens, in constant time.</summary>
internal sealed class TokenAuthenticator(IOptions<AuthOptions> options)
{
    public const string OperatorProject = "admin";

    public Caller? AuthenticateApi(string? authorization)
    {
        var hash = HashBearer(authorization);
        return hash is not null && options.Value.OperatorTokenSha256.Any(known => Matches(hash, known))
            ? new Caller("operator", OperatorProject, IsOperator: true)
            : null;
    }

    public bool AuthenticateAgent(string? authorization)
        => options.Value.AgentTokenSha256 is not { Length: > 0 } expected
            || (HashBearer(authorization) is { } hash && Matches(hash, expected));

    public static string Sha256Hex(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    private static string? HashBearer(string? authorization)
    {
        const string prefix = "Bearer ";
        if (authorization is null || !authorization.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || authorization.Length > 1024)
        {
            return null;
        }
        return Sha256Hex(authorization[prefix.Length..].Trim());
    }

    private static bool Matches(string hashHex, string expectedHex)
        => CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(hashHex), Encoding.ASCII.GetBytes(expectedHex.Trim().ToLowerInvariant()));
}
