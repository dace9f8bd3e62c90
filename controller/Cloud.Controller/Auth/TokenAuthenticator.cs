using System.Security.Cryptography;
using System.Text;
using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Auth;

/// <summary>
/// Who the caller is once its bearer token checked out: the project it acts in and its role, and
/// for an issued token its name (what the audit trail shows next to the token's id).
/// </summary>
internal sealed record Caller(string Subject, string ProjectId, string Role, string? TokenName = null)
{
    /// <summary>Operators see and change every tenant's resources.</summary>
    public bool IsOperator => Role == TokenRoles.Operator;

    /// <summary>Readers may only read.</summary>
    public bool CanWrite => Role != TokenRoles.Reader;

    /// <summary>Refuses a reader's mutation before anything is looked up, so a refusal reveals nothing.</summary>
    public void RequireWrite()
    {
        if (!CanWrite)
        {
            throw new ApiException(StatusCode.PermissionDenied, "This token is a reader's: it can only read.");
        }
    }

    public void RequireOperator(string what)
    {
        if (!IsOperator)
        {
            throw new ApiException(StatusCode.PermissionDenied, $"Only operators {what}.");
        }
    }
}

/// <summary>API tokens. Section "Auth".</summary>
public sealed class AuthOptions
{
    public const string SectionName = "Auth";

    /// <summary>
    /// SHA-256 (hex) of each bootstrap operator token, from configuration. Only hashes are
    /// configured, never tokens. Further tokens are created through the API and kept in PostgreSQL.
    /// </summary>
    public IList<string> OperatorTokenSha256 { get; } = [];

    /// <summary>
    /// How often a long-lived call (a watch) checks again that the token it was opened with is
    /// neither revoked nor expired, and ends when it is. Default 2 seconds. Read from PostgreSQL,
    /// so a revocation on another replica counts too. Configured operator tokens never expire.
    /// </summary>
    public TimeSpan TokenRecheckInterval { get; set; } = TimeSpan.FromSeconds(2);
}

/// <summary>
/// Checks "Authorization: Bearer ..." against hashed tokens: the configured operator tokens (in
/// constant time), then the api_tokens table, where a token counts only while it is neither
/// revoked nor expired. Looked up on every call, so that a revocation takes effect at once.
/// </summary>
internal sealed class TokenAuthenticator(IOptions<AuthOptions> options, IDbContextFactory<LedgerDbContext> contexts, TimeProvider time)
{
    /// <summary>The project of operator tokens: what operators create for themselves lives here.</summary>
    public const string OperatorProject = "admin";

    /// <summary>Prefix of issued tokens, so that a leaked one is recognizable by secret scanners.</summary>
    public const string TokenPrefix = "cloud_";

    /// <summary>How a caller authenticated by an api_tokens row is named: this prefix and the row's id.</summary>
    private const string TokenSubjectPrefix = "token:";

    /// <summary>How many hashes of tokens that authenticated are remembered for <see cref="IsKnownValid"/>; past it, the set starts over.</summary>
    private const int MaxRecentlyValid = 10_000;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _recentlyValid = new(StringComparer.Ordinal);

    public async Task<Caller?> AuthenticateApiAsync(string? authorization, CancellationToken cancellationToken)
    {
        var hash = HashBearer(authorization);
        if (hash is null)
        {
            return null;
        }
        if (options.Value.OperatorTokenSha256.Any(known => Matches(hash, known)))
        {
            return new Caller("operator", OperatorProject, TokenRoles.Operator);
        }
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var now = time.GetUtcNow();
        var token = await db.ApiTokens.AsNoTracking()
            .Where(t => t.TokenSha256 == hash && t.RevokedAt == null && (t.ExpiresAt == null || t.ExpiresAt > now))
            .Select(t => new { t.Id, t.TenantId, t.Role, t.Name })
            .SingleOrDefaultAsync(cancellationToken);
        if (token is not null)
        {
            RememberValid(hash);
        }
        return token is null ? null : new Caller($"{TokenSubjectPrefix}{token.Id}", token.TenantId ?? OperatorProject, token.Role, token.Name);
    }

    /// <summary>
    /// True while the token <paramref name="caller"/> authenticated with is still valid: neither
    /// revoked nor expired. Configured operator tokens stay valid for the process's life.
    /// </summary>
    public async Task<bool> IsStillValidAsync(Caller caller, CancellationToken cancellationToken)
    {
        if (!caller.Subject.StartsWith(TokenSubjectPrefix, StringComparison.Ordinal))
        {
            return true;
        }
        if (!Guid.TryParse(caller.Subject.AsSpan(TokenSubjectPrefix.Length), out var id))
        {
            return false;
        }
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var now = time.GetUtcNow();
        return await db.ApiTokens.AsNoTracking()
            .AnyAsync(t => t.Id == id && t.RevokedAt == null && (t.ExpiresAt == null || t.ExpiresAt > now), cancellationToken);
    }

    /// <summary>
    /// True when the bearer is a configured operator token or one that authenticated
    /// recently on this replica. Decides only whether a throttled address may still ask the
    /// database: a revoked token known here is still refused by the database's answer.
    /// </summary>
    public bool IsKnownValid(string? authorization)
    {
        if (HashBearer(authorization) is not { } hash)
        {
            return false;
        }
        return _recentlyValid.ContainsKey(hash)
            || options.Value.OperatorTokenSha256.Any(known => Matches(hash, known));
    }

    private void RememberValid(string hash)
    {
        if (_recentlyValid.Count >= MaxRecentlyValid)
        {
            _recentlyValid.Clear();
        }
        _recentlyValid[hash] = 0;
    }

    public static string Sha256Hex(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>A new secret: 256 random bits, URL-safe.</summary>
    public static string NewSecret()
        => TokenPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

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
