using System.Collections.Frozen;
using Npgsql;

namespace Cloud.Controller.Trust;

/// <summary>
/// The serial numbers of revoked node certificates that have not yet expired, read from the
/// ledger at most every <see cref="RefreshInterval"/>, so that a heartbeat costs no query. A
/// revocation on any replica takes effect on all of them within that interval; the replica that
/// revoked sees it at once.
/// </summary>
internal sealed class RevokedCertificates(NpgsqlDataSource dataSource, TimeProvider time)
{
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(5);

    private readonly SemaphoreSlim _refresh = new(1, 1);
    private FrozenSet<string> _serials = FrozenSet<string>.Empty;
    private DateTimeOffset _readAt = DateTimeOffset.MinValue;

    public async ValueTask<bool> IsRevokedAsync(string serial, CancellationToken cancellationToken)
    {
        if (time.GetUtcNow() - _readAt > RefreshInterval)
        {
            await RefreshAsync(cancellationToken);
        }
        return _serials.Contains(serial);
    }

    /// <summary>Revokes every certificate of <paramref name="node"/>; how many were revoked.</summary>
    public async Task<int> RevokeNodeAsync(string node, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "UPDATE node_certificates SET revoked_at = $2 WHERE node_name = $1 AND revoked_at IS NULL AND not_after > $2");
        command.Parameters.Add(new() { Value = node });
        command.Parameters.Add(new() { Value = time.GetUtcNow() });
        var revoked = await command.ExecuteNonQueryAsync(cancellationToken);
        _readAt = DateTimeOffset.MinValue;
        return revoked;
    }

    private async Task RefreshAsync(CancellationToken cancellationToken)
    {
        await _refresh.WaitAsync(cancellationToken);
        try
        {
            var now = time.GetUtcNow();
            if (now - _readAt <= RefreshInterval)
            {
                return;
            }
            await using var command = dataSource.CreateCommand("SELECT serial FROM node_certificates WHERE revoked_at IS NOT NULL AND not_after > $1");
            command.Parameters.Add(new() { Value = now });
            var serials = new List<string>();
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    serials.Add(reader.GetString(0));
                }
            }
            _serials = serials.ToFrozenSet(StringComparer.OrdinalIgnoreCase);
            _readAt = now;
        }
        finally
        {
            _refresh.Release();
        }
    }
}
