using System.Security.Cryptography;
using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cloud.Controller.Trust;

/// <summary>
/// Single-use, expiring tokens with which a node joins, each made for one node name. Only their
/// SHA-256 is stored; a token is spent in the same statement that checks it, so two agents
/// racing with one token cannot both join.
/// </summary>
internal sealed class JoinTokens(NpgsqlDataSource dataSource, IOptions<TrustOptions> options, TimeProvider time)
{
    public const string Prefix = "cjt_";
    private static readonly TimeSpan MinLifetime = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan MaxLifetime = TimeSpan.FromDays(7);

    public async Task<JoinToken> CreateAsync(Caller caller, CreateJoinTokenRequest request, CancellationToken cancellationToken)
    {
        caller.RequireOperator("may make join tokens");
        VmValidation.RequireName(request.Name, "node");
        var lifetime = request.TtlSeconds == 0 ? options.Value.JoinTokenLifetime : TimeSpan.FromSeconds(request.TtlSeconds);
        if (request.TtlSeconds < 0 || lifetime < MinLifetime || lifetime > MaxLifetime)
        {
            throw ApiException.Invalid($"ttl_seconds must be between {MinLifetime.TotalSeconds} and {MaxLifetime.TotalSeconds}, or 0 for the default.");
        }
        var token = Prefix + Base64Url(RandomNumberGenerator.GetBytes(32));
        var now = time.GetUtcNow();
        await using var command = dataSource.CreateCommand(
            "INSERT INTO node_join_tokens (token_sha256, node_name, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)");
        command.Parameters.Add(new() { Value = Sha256(token) });
        command.Parameters.Add(new() { Value = request.Name });
        command.Parameters.Add(new() { Value = caller.Subject });
        command.Parameters.Add(new() { Value = now });
        command.Parameters.Add(new() { Value = now + lifetime });
        await command.ExecuteNonQueryAsync(cancellationToken);
        return new JoinToken { NodeName = request.Name, Token = token, ExpireTime = Timestamp.FromDateTimeOffset(now + lifetime) };
    }

    /// <summary>Spends <paramref name="token"/> for <paramref name="node"/>; false when it is unknown, spent, expired or another node's.</summary>
    public async Task<bool> SpendAsync(string token, string node, CancellationToken cancellationToken)
    {
        if (!token.StartsWith(Prefix, StringComparison.Ordinal) || token.Length > 128)
        {
            return false;
        }
        await using var command = dataSource.CreateCommand(
            """
            UPDATE node_join_tokens SET used_at = $3
             WHERE token_sha256 = $1 AND node_name = $2 AND used_at IS NULL AND expires_at > $3
            """);
        command.Parameters.Add(new() { Value = Sha256(token) });
        command.Parameters.Add(new() { Value = node });
        command.Parameters.Add(new() { Value = time.GetUtcNow() });
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    private static string Sha256(string token) => Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(token)));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
