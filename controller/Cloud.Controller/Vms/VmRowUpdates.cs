using Npgsql;

namespace Cloud.Controller.Vms;

/// <summary>
/// Writes that must commit in the same transaction as a claim or a release in the ledger.
/// They use the ledger's connection directly, because the claim runs on plain Npgsql.
/// </summary>
internal static class VmRowUpdates
{
    /// <summary>Records the node a VM was placed on; only a VM not yet placed can be.</summary>
    public static async Task<bool> MarkPlacedAsync(NpgsqlTransaction transaction, Guid vmId, Guid nodeId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "UPDATE vms SET node_id = @node, state = 'CREATING', error = NULL, updated_at = @now WHERE id = @id AND node_id IS NULL AND state = 'PENDING'",
            transaction.Connection, transaction);
        command.Parameters.AddWithValue("node", nodeId);
        command.Parameters.AddWithValue("now", now);
        command.Parameters.AddWithValue("id", vmId);
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    /// <summary>
    /// Records the nodes a batch's VMs were placed on, as one statement for the claim's round trip.
    /// Only VMs not yet placed are; the caller checks the count in the claim's transaction.
    /// </summary>
    public static NpgsqlBatchCommand MarkPlacedCommand(IReadOnlyList<(Guid VmId, Guid NodeId)> placed, DateTimeOffset now)
    {
        var command = new NpgsqlBatchCommand(
            """
            UPDATE vms SET node_id = p.node_id, state = 'CREATING', error = NULL, updated_at = $3
              FROM unnest($1::uuid[], $2::uuid[]) AS p(id, node_id)
             WHERE vms.id = p.id AND vms.node_id IS NULL AND vms.state = 'PENDING'
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = placed.Select(p => p.VmId).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = placed.Select(p => p.NodeId).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = now });
        return command;
    }

    /// <summary>Marks created VMs RUNNING, unless they are being deleted meanwhile.</summary>
    public static async Task MarkRunningAsync(NpgsqlTransaction transaction, Guid[] vmIds, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("UPDATE vms SET state = 'RUNNING', updated_at = $2 WHERE id = ANY($1) AND state = 'CREATING'", transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = vmIds });
        command.Parameters.Add(new NpgsqlParameter { Value = now });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Clears the VM's node after its claim was released, with its final state.</summary>
    public static async Task MarkUnplacedAsync(NpgsqlTransaction transaction, Guid vmId, string state, string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "UPDATE vms SET node_id = NULL, state = @state, error = @error, updated_at = @now WHERE id = @id",
            transaction.Connection, transaction);
        command.Parameters.AddWithValue("state", state);
        command.Parameters.AddWithValue("error", (object?)error ?? DBNull.Value);
        command.Parameters.AddWithValue("now", now);
        command.Parameters.AddWithValue("id", vmId);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Ends an operation inside the caller's transaction.</summary>
    public static async Task FinishOperationAsync(NpgsqlTransaction transaction, Guid operationId, string? errorCode, string? errorMessage, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            UPDATE operations
               SET state = CASE WHEN @code IS NULL THEN 'SUCCEEDED' ELSE 'FAILED' END,
                   progress = CASE WHEN @code IS NULL THEN 100 ELSE progress END,
                   error_code = @code, error_message = @message, updated_at = @now, owner = NULL, lease_expires_at = NULL
             WHERE id = @id AND state IN ('PENDING', 'RUNNING')
            """,
            transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter("code", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)errorCode ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("message", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)errorMessage ?? DBNull.Value });
        command.Parameters.AddWithValue("now", now);
        command.Parameters.AddWithValue("id", operationId);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
