using System.Security.Cryptography;
using System.Text;
using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Vms;
using Grpc.Core;
using Google.Protobuf;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Cloud.Controller.Tenants;

/// <summary>Idempotency of the synchronous creates (tenants, tokens). Section "Idempotency".</summary>
public sealed class IdempotencyOptions
{
    public const string SectionName = "Idempotency";

    /// <summary>How long a key is remembered, and a token's sealed secret kept for a retry. Default 24 hours; 1 minute to 7 days.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// 32 random bytes, base64, that seal a token's secret in its idempotency record. Every
    /// replica needs the same key to show the secret to a retry that reaches another replica.
    /// Empty: a random key per process (one replica; a restart forgets the secrets).
    /// </summary>
    public string? SealingKey { get; set; }

    /// <summary>What is wrong with the settings, naming the setting; null when they are fine.</summary>
    internal static string? Problem(IdempotencyOptions options)
    {
        if (options.Window < TimeSpan.FromMinutes(1) || options.Window > TimeSpan.FromDays(7))
        {
            return "Idempotency:Window must be between 00:01:00 and 7.00:00:00.";
        }
        if (!string.IsNullOrEmpty(options.SealingKey))
        {
            var bytes = new byte[64];
            if (!Convert.TryFromBase64String(options.SealingKey, bytes, out var length) || length != 32)
            {
                return "Idempotency:SealingKey must be 32 bytes in base64 (for example: openssl rand -base64 32).";
            }
        }
        return null;
    }
}

/// <summary>Checks <see cref="IdempotencyOptions"/> when the controller starts.</summary>
internal sealed class IdempotencyOptionsValidation : IValidateOptions<IdempotencyOptions>
{
    public ValidateOptionsResult Validate(string? name, IdempotencyOptions options)
        => IdempotencyOptions.Problem(options) is { } problem ? ValidateOptionsResult.Fail(problem) : ValidateOptionsResult.Success;
}

/// <summary>What a synchronous create made: the id of it, its answer, and for a token the secret to seal.</summary>
internal sealed record IdempotentResult<T>(string ResourceId, T Answer, string? Secret);

/// <summary>
/// Runs a synchronous create (a tenant, a token) at most once per Idempotency-Key. The key is
/// recorded first, in the create's own transaction, so a concurrent duplicate waits on the
/// record's primary key and then answers from the committed record; a create that fails rolls
/// back its record with it, and a retry runs again. A token's secret is kept sealed (AES-GCM
/// under the controller's sealing key, bound to the caller, the key and the token) only until
/// the window ends; expired records are purged as new ones are written.
/// </summary>
internal sealed class IdempotentCreates(IDbContextFactory<LedgerDbContext> contexts, IOptions<IdempotencyOptions> options, TimeProvider time)
{
    public const string TenantCreate = "tenant.create";
    public const string TokenCreate = "token.create";

    private readonly byte[] _sealingKey = string.IsNullOrEmpty(options.Value.SealingKey)
        ? RandomNumberGenerator.GetBytes(32)
        : Convert.FromBase64String(options.Value.SealingKey);

    /// <summary>
    /// Creates once: <paramref name="create"/> writes in the given context and transaction and
    /// answers; a retry with the same key and request answers <paramref name="replay"/> of the
    /// first record instead; another request under the key is refused (409).
    /// </summary>
    public async Task<T> RunAsync<T>(
        Caller caller,
        string key,
        string kind,
        IMessage request,
        Func<LedgerDbContext, CancellationToken, Task<IdempotentResult<T>>> create,
        Func<LedgerDbContext, string, string?, CancellationToken, Task<T>> replay,
        CancellationToken cancellationToken)
    {
        VmValidation.RequireIdempotencyKey(key.Length == 0 ? null : key);
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        if (key.Length == 0)
        {
            return (await create(db, cancellationToken)).Answer;
        }
        var hash = Convert.ToHexStringLower(SHA256.HashData(request.ToByteArray()));
        var now = time.GetUtcNow();
        await db.IdempotencyRecords.Where(r => r.ExpiresAt <= now).ExecuteDeleteAsync(cancellationToken);

        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        // The record goes first: a duplicate running at the same moment blocks here until this
        // transaction ends, then finds the record (or, after a rollback, takes the key itself).
        var taken = await db.Database.ExecuteSqlAsync($"""
            INSERT INTO idempotency_records (project_id, key, kind, request_hash, resource_id, created_at, expires_at)
            VALUES ({caller.ProjectId}, {key}, {kind}, {hash}, '', {now}, {now + options.Value.Window})
            ON CONFLICT DO NOTHING
            """, cancellationToken);
        if (taken == 0)
        {
            await transaction.RollbackAsync(cancellationToken);
            var earlier = await db.IdempotencyRecords.AsNoTracking()
                .SingleAsync(r => r.ProjectId == caller.ProjectId && r.Key == key, cancellationToken);
            if (earlier.Kind != kind || earlier.RequestHash != hash)
            {
                throw new ApiException(StatusCode.FailedPrecondition,
                    $"Idempotency-Key '{key}' was already used for a different request ({earlier.Kind} of {earlier.ResourceId}).",
                    new Dictionary<string, object?> { ["httpStatus"] = 409, ["reason"] = "IDEMPOTENCY_KEY_REUSED" });
            }
            var secret = earlier.SealedSecret is { } sealedSecret ? Unseal(sealedSecret, Binding(caller, key, earlier.ResourceId)) : null;
            return await replay(db, earlier.ResourceId, secret, cancellationToken);
        }

        var result = await create(db, cancellationToken);
        var sealedNew = result.Secret is null ? null : Seal(result.Secret, Binding(caller, key, result.ResourceId));
        var sealedParameter = new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Bytea, Value = (object?)sealedNew ?? DBNull.Value };
        await db.Database.ExecuteSqlAsync(
            $"UPDATE idempotency_records SET resource_id = {result.ResourceId}, sealed_secret = {sealedParameter} WHERE project_id = {caller.ProjectId} AND key = {key}",
            cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return result.Answer;
    }

    /// <summary>What a sealed secret is bound to: moved to another record, it does not open.</summary>
    private static byte[] Binding(Caller caller, string key, string resourceId) => Encoding.UTF8.GetBytes($"{caller.ProjectId}\n{key}\n{resourceId}");

    private byte[] Seal(string secret, byte[] binding)
    {
        var plain = Encoding.UTF8.GetBytes(secret);
        var sealedBytes = new byte[AesGcm.NonceByteSizes.MaxSize + AesGcm.TagByteSizes.MaxSize + plain.Length];
        var nonce = sealedBytes.AsSpan(0, AesGcm.NonceByteSizes.MaxSize);
        var tag = sealedBytes.AsSpan(nonce.Length, AesGcm.TagByteSizes.MaxSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_sealingKey, AesGcm.TagByteSizes.MaxSize);
        aes.Encrypt(nonce, plain, sealedBytes.AsSpan(nonce.Length + tag.Length), tag, binding);
        return sealedBytes;
    }

    /// <summary>The secret, or null when it cannot be opened (another sealing key: another replica's, or before a restart).</summary>
    private string? Unseal(byte[] sealedBytes, byte[] binding)
    {
        var headerLength = AesGcm.NonceByteSizes.MaxSize + AesGcm.TagByteSizes.MaxSize;
        if (sealedBytes.Length < headerLength)
        {
            return null;
        }
        var plain = new byte[sealedBytes.Length - headerLength];
        try
        {
            using var aes = new AesGcm(_sealingKey, AesGcm.TagByteSizes.MaxSize);
            aes.Decrypt(sealedBytes.AsSpan(0, AesGcm.NonceByteSizes.MaxSize), sealedBytes.AsSpan(headerLength),
                sealedBytes.AsSpan(AesGcm.NonceByteSizes.MaxSize, AesGcm.TagByteSizes.MaxSize), plain, binding);
        }
        catch (AuthenticationTagMismatchException)
        {
            return null;
        }
        return Encoding.UTF8.GetString(plain);
    }
}
