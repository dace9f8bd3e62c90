using System.Security.Cryptography;
using System.Text;
using Cloud.Controller.Data;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Privacy;

/// <summary>
/// Per-tenant host ids, as OpenStack's hostId: a tenant sees whether two of its VMs share a host
/// (anti-affinity checks) without learning the host's name. Unlike OpenStack's sha224(project +
/// host), the hash is keyed with a secret of the cloud (HMAC-SHA256), so that a tenant cannot
/// test guessed node names against its host ids, and two tenants' ids of one node differ, so that
/// they cannot find out that they share a node.
/// </summary>
internal sealed class HostIds(IDbContextFactory<LedgerDbContext> contexts)
{
    /// <summary>The name of the key in the cloud_secrets table.</summary>
    public const string SecretName = "host_id";

    /// <summary>Hex characters of a host id: 128 bits, plenty against collisions, short enough to read.</summary>
    public const int Length = 32;

    private readonly SemaphoreSlim _loading = new(1, 1);
    private byte[]? _key;

    /// <summary>The cloud's key, read (or made, by the first replica) once per process.</summary>
    public async ValueTask<byte[]> KeyAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _key) is { } key)
        {
            return key;
        }
        await _loading.WaitAsync(cancellationToken);
        try
        {
            if (_key is null)
            {
                await using var db = await contexts.CreateDbContextAsync(cancellationToken);
                Volatile.Write(ref _key, await CloudSecrets.GetOrCreateAsync(db, SecretName, () => RandomNumberGenerator.GetBytes(32), cancellationToken));
            }
            return _key!;
        }
        finally
        {
            _loading.Release();
        }
    }

    /// <summary>The host id of node <paramref name="nodeName"/> as tenant <paramref name="project"/> sees it; empty for no node.</summary>
    public static string Compute(byte[] key, string project, string? nodeName)
    {
        if (string.IsNullOrEmpty(nodeName))
        {
            return "";
        }
        // The separator cannot occur in a tenant id or a node name (both DNS labels), so no two
        // pairs hash the same input.
        var hash = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(project + "\n" + nodeName));
        return Convert.ToHexStringLower(hash)[..Length];
    }
}
