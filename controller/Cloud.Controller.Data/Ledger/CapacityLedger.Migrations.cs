using Npgsql;

namespace Cloud.Controller.Data;

/// <summary>
/// Live migration in the ledger. While a VM migrates it holds capacity on both nodes: its
/// allocations on the source are handed to a migration consumer (the id of the migration's
/// operation), and the VM consumer claims the same amounts on the target. When the migration
/// ends exactly one set remains: confirming drops the migration consumer (the source is
/// freed); reverting drops the VM's target allocations and hands the source back to the VM.
/// </summary>
internal sealed partial class CapacityLedger
{
    private const string MigrationSavepoint = "cloud_ledger_migration";

    /// <summary>
    /// Starts a migration of <paramref name="vmId"/> from <paramref name="sourceNodeId"/> to
    /// <paramref name="targetNodeId"/>, claimed against the target's
    /// <paramref name="expectedTargetGeneration"/>. A refusal (stale generation, no room on the
    /// target) changes nothing and never throws.
    /// </summary>
    /// <exception cref="ArgumentException">The nodes are the same, or the VM holds nothing on the source.</exception>
    public async Task<ClaimResult> BeginMigrationAsync(
        Guid vmId, Guid migrationId, Guid sourceNodeId, Guid targetNodeId, long expectedTargetGeneration,
        NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        if (sourceNodeId == targetNodeId)
        {
            throw new ArgumentException("A migration moves a VM to another node; source and target are the same.", nameof(targetNodeId));
        }
        if (vmId == migrationId || vmId == Guid.Empty || migrationId == Guid.Empty)
        {
            throw new ArgumentException("The VM and its migration need distinct, non-empty ids.", nameof(migrationId));
        }
        return await InTransactionAsync(transaction, async tx =>
        {
            await using var batch = new NpgsqlBatch(tx.Connection, tx)
            {
                BatchCommands =
                {
                    new NpgsqlBatchCommand($"SAVEPOINT {MigrationSavepoint}"),
                    Command("""
                        SELECT a.resource_class, a.used, c.project_id
                          FROM allocations AS a JOIN consumers AS c ON c.id = a.consumer_id
                         WHERE a.consumer_id = $1 AND a.node_id = $2 AND c.kind = 'vm'
                         ORDER BY a.resource_class
                           FOR UPDATE OF a
                        """, vmId, sourceNodeId),
                },
            };
            var amounts = new Dictionary<string, long>(StringComparer.Ordinal);
            var project = "";
            await using (var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    amounts[reader.GetString(0)] = reader.GetInt64(1);
                    project = reader.GetString(2);
                }
            }
            if (amounts.Count == 0)
            {
                await RollbackToAsync(tx, MigrationSavepoint, cancellationToken).ConfigureAwait(false);
                throw new ArgumentException($"VM {vmId} holds no capacity on node {sourceNodeId}; there is nothing to migrate.", nameof(vmId));
            }

            // The hand-over does not change what the source holds, so its generation stays:
            // other replicas' views of it remain right.
            await using (var handOver = new NpgsqlBatch(tx.Connection, tx)
            {
                BatchCommands =
                {
                    Command("INSERT INTO consumers (id, kind, project_id, created_at, generation) VALUES ($1, 'migration', $2, $3, 0)",
                        migrationId, project, time.GetUtcNow()),
                    Command("UPDATE allocations SET consumer_id = $1 WHERE consumer_id = $2 AND node_id = $3", migrationId, vmId, sourceNodeId),
                },
            })
            {
                try
                {
                    await handOver.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
                {
                    await RollbackToAsync(tx, MigrationSavepoint, cancellationToken).ConfigureAwait(false);
                    throw new ArgumentException($"Migration {migrationId} already exists.", nameof(migrationId), e);
                }
            }

            var plan = ClaimPlan.Build([new Claim(vmId, ConsumerKinds.Vm, project, targetNodeId, expectedTargetGeneration, amounts)]);
            var result = await ClaimInAsync(tx.Connection!, tx, plan, [], cancellationToken).ConfigureAwait(false);
            if (!result.Succeeded)
            {
                await RollbackToAsync(tx, MigrationSavepoint, cancellationToken).ConfigureAwait(false);
            }
            return result;
        }, r => r.Succeeded, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Ends a migration. Confirmed: the source is freed and the VM keeps the target. Reverted:
    /// the target is freed and the VM gets the source back. Either way the migration consumer
    /// is gone and exactly one set of allocations remains. Ending a migration that is already
    /// over does nothing, so a retried end is harmless.
    /// </summary>
    /// <returns>The nodes whose capacity was freed.</returns>
    public async Task<IReadOnlyList<Guid>> EndMigrationAsync(Guid vmId, Guid migrationId, bool confirm, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        if (confirm)
        {
            return await ReleaseMigrationAsync(migrationId, transaction, cancellationToken).ConfigureAwait(false);
        }
        return await InTransactionAsync(transaction, async tx =>
        {
            await using var batch = new NpgsqlBatch(tx.Connection, tx)
            {
                BatchCommands =
                {
                    Command("""
                        SELECT id FROM nodes
                         WHERE id IN (SELECT node_id FROM allocations WHERE consumer_id = $1 OR consumer_id = $2)
                         ORDER BY id FOR NO KEY UPDATE
                        """, vmId, migrationId),
                    // Only while the migration consumer exists: without it the revert already happened.
                    Command("""
                        UPDATE nodes SET generation = generation + 1
                         WHERE EXISTS (SELECT 1 FROM consumers WHERE id = $2 AND kind = 'migration')
                           AND id IN (SELECT node_id FROM allocations WHERE consumer_id = $1
                                       AND node_id NOT IN (SELECT node_id FROM allocations WHERE consumer_id = $2))
                        RETURNING id
                        """, vmId, migrationId),
                    Command("""
                        DELETE FROM allocations
                         WHERE consumer_id = $1
                           AND EXISTS (SELECT 1 FROM consumers WHERE id = $2 AND kind = 'migration')
                           AND node_id NOT IN (SELECT node_id FROM allocations WHERE consumer_id = $2)
                        """, vmId, migrationId),
                    Command("UPDATE allocations SET consumer_id = $1 WHERE consumer_id = $2", vmId, migrationId),
                    Command("DELETE FROM consumers WHERE id = $1 AND kind = 'migration'", migrationId),
                },
            };
            var freed = new List<Guid>();
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                freed.Add(reader.GetGuid(0));
            }
            return (IReadOnlyList<Guid>)freed;
        }, _ => true, cancellationToken).ConfigureAwait(false);
    }

    private async Task<IReadOnlyList<Guid>> ReleaseMigrationAsync(Guid migrationId, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        await using (var check = dataSource.CreateCommand("SELECT kind FROM consumers WHERE id = $1"))
        {
            check.Parameters.Add(new NpgsqlParameter { Value = migrationId });
            if (await check.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is string kind && kind != ConsumerKinds.Migration)
            {
                throw new ArgumentException($"Consumer {migrationId} is a {kind}, not a migration.", nameof(migrationId));
            }
        }
        return await ReleaseAsync(migrationId, transaction, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs <paramref name="work"/> in the caller's transaction, or in one of its own that commits when <paramref name="commit"/> says so.</summary>
    private async Task<T> InTransactionAsync<T>(NpgsqlTransaction? transaction, Func<NpgsqlTransaction, Task<T>> work, Func<T, bool> commit, CancellationToken cancellationToken)
    {
        if (transaction is not null)
        {
            if (transaction.Connection is null)
            {
                throw new InvalidOperationException("The transaction given to the ledger has already completed.");
            }
            return await work(transaction).ConfigureAwait(false);
        }
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var owned = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var result = await work(owned).ConfigureAwait(false);
        if (commit(result))
        {
            await owned.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await owned.RollbackAsync(cancellationToken).ConfigureAwait(false);
        }
        return result;
    }

    private static async Task RollbackToAsync(NpgsqlTransaction transaction, string savepoint, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"ROLLBACK TO SAVEPOINT {savepoint}", transaction.Connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
