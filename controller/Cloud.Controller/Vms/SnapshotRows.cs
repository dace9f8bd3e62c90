using Cloud.Controller.Quotas;
using Npgsql;

namespace Cloud.Controller.Vms;

/// <summary>
/// Writes of snapshot rows that go with another change: a quota release, a VM's move, the
/// discovery that a node no longer holds a snapshot's data.
/// </summary>
internal static class SnapshotRows
{
    /// <summary>Marks a snapshot DELETED and gives its quota back, once: a second call finds it deleted already.</summary>
    public static async Task DiscardAsync(NpgsqlTransaction transaction, Guid snapshotId, string? error, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "UPDATE snapshots SET state = 'DELETED', error = $2, updated_at = now() WHERE id = $1 AND state <> 'DELETED' RETURNING project_id",
            transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = snapshotId });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)error ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        if (await command.ExecuteScalarAsync(cancellationToken) is string projectId)
        {
            await QuotaLedger.ReleaseAsync(transaction, projectId, QuotaUsage.OneSnapshot, cancellationToken);
        }
    }

    /// <summary>Marks every snapshot of a deleted VM DELETED, and gives their quota back.</summary>
    public static async Task DiscardAllOfVmAsync(NpgsqlTransaction transaction, Guid vmId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "UPDATE snapshots SET state = 'DELETED', updated_at = now() WHERE vm_id = $1 AND state <> 'DELETED' RETURNING project_id",
            transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = vmId });
        var released = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                released.Add(reader.GetString(0));
            }
        }
        foreach (var group in released.GroupBy(p => p, StringComparer.Ordinal))
        {
            await QuotaLedger.ReleaseAsync(transaction, group.Key, new QuotaUsage(0, 0, 0, 0, group.Count()), cancellationToken);
        }
    }

    /// <summary>
    /// In the transaction that lands a VM on <paramref name="nodeId"/>: its live snapshots (not
    /// LOST, ERROR or DELETED) are on that node now, since the destination took them before the
    /// move. A LOST snapshot stays where its data was last known: only that node could bring it back.
    /// </summary>
    public static async Task<int> FollowVmAsync(NpgsqlTransaction transaction, Guid vmId, Guid nodeId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "UPDATE snapshots SET node_id = $2, updated_at = now() WHERE vm_id = $1 AND state IN ('CREATING', 'READY', 'DELETING') AND node_id IS DISTINCT FROM $2",
            transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = vmId });
        command.Parameters.Add(new NpgsqlParameter { Value = nodeId });
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>A move of the snapshot's VM is under way: the record of its snapshots may be about to move with it.</summary>
    private const string VmMoving = """
        EXISTS (SELECT 1 FROM operations AS o
                 WHERE o.target_id = snapshots.vm_id::text AND o.state IN ('PENDING', 'RUNNING') AND o.kind IN ('vm.migrate', 'vm.resize'))
        """;

    /// <summary>
    /// Marks a READY snapshot LOST with <paramref name="reason"/> when its data is still recorded on
    /// <paramref name="nodeId"/> and its VM is not on the move; false when it was not READY there
    /// any more (moved, deleted, lost already). The quota stays charged: the tenant deletes a LOST
    /// snapshot like any other.
    /// </summary>
    public static async Task<bool> MarkLostAsync(NpgsqlTransaction transaction, Guid snapshotId, Guid? nodeId, string reason, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"UPDATE snapshots SET state = 'LOST', error = $3, updated_at = $4 WHERE id = $1 AND state = 'READY' AND node_id IS NOT DISTINCT FROM $2 AND NOT {VmMoving}",
            transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = snapshotId });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)nodeId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = reason });
        command.Parameters.Add(new NpgsqlParameter { Value = now });
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    /// <summary>
    /// Makes a LOST snapshot READY again (its reason cleared) when its data is reported on
    /// <paramref name="nodeId"/>, which is still where the ledger has it and where its VM is, and the
    /// VM is not on the move; false otherwise.
    /// </summary>
    public static async Task<bool> MarkFoundAsync(NpgsqlTransaction transaction, Guid snapshotId, Guid nodeId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"""
            UPDATE snapshots SET state = 'READY', error = NULL, updated_at = $3
             WHERE id = $1 AND state = 'LOST' AND node_id = $2
               AND EXISTS (SELECT 1 FROM vms AS v WHERE v.id = snapshots.vm_id AND v.node_id = $2)
               AND NOT {VmMoving}
            """, transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = snapshotId });
        command.Parameters.Add(new NpgsqlParameter { Value = nodeId });
        command.Parameters.Add(new NpgsqlParameter { Value = now });
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }
}
