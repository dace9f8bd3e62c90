using System.Globalization;
using Npgsql;

namespace Cloud.Controller.Data;

/// <summary>
/// Checks, by SQL over the whole database, what the ledger promises: no node holds more than its
/// capacity, no allocation outlives its consumer, a VM's capacity is where the VM is, the
/// running totals that claims check against are the sums of the allocations, and a READY
/// snapshot is on its VM's node, which is UP. Run
/// after benchmarks, chaos tests and on operator demand; an empty list means all is well.
/// </summary>
internal static class LedgerInvariants
{
    /// <summary>Usage above floor((total - reserved) * ratio), or usage of a class the node does not offer.</summary>
    private const string Overcommitted = $"""
        SELECT n.name, n.id, a.resource_class, a.used, {LedgerSql.Capacity}
          FROM (SELECT node_id, resource_class, sum(used)::bigint AS used FROM allocations GROUP BY node_id, resource_class) AS a
          JOIN nodes AS n ON n.id = a.node_id
          LEFT JOIN inventories AS i ON i.node_id = a.node_id AND i.resource_class = a.resource_class
         WHERE i.node_id IS NULL OR a.used > {LedgerSql.Capacity}
         ORDER BY n.name, a.resource_class
        """;

    /// <summary>
    /// Allocations whose consumer is dead: a VM consumer whose VM is missing or DELETED; a
    /// migration consumer whose operation (same id) is missing or finished.
    /// </summary>
    private const string DeadConsumers = """
        SELECT a.consumer_id, coalesce(c.kind, '(none)'), count(*)
          FROM allocations AS a
          LEFT JOIN consumers AS c ON c.id = a.consumer_id
          LEFT JOIN vms AS v ON v.id = a.consumer_id
          LEFT JOIN operations AS o ON o.id = a.consumer_id
         WHERE c.id IS NULL
            OR (c.kind = 'vm' AND (v.id IS NULL OR v.state = 'DELETED'))
            OR (c.kind = 'migration' AND (o.id IS NULL OR o.state NOT IN ('PENDING', 'RUNNING')))
            OR c.kind NOT IN ('vm', 'migration')
         GROUP BY a.consumer_id, c.kind
         ORDER BY a.consumer_id
        """;

    /// <summary>
    /// A VM's allocations on a node other than the VM's own, unless a live migration of that VM
    /// (a migration consumer whose unfinished operation targets the VM) explains them. A deleted
    /// VM's allocations are reported as dead instead.
    /// </summary>
    private const string Misplaced = """
        SELECT v.id, a.node_id, v.node_id, count(*)
          FROM allocations AS a
          JOIN consumers AS c ON c.id = a.consumer_id AND c.kind = 'vm'
          JOIN vms AS v ON v.id = c.id AND v.state <> 'DELETED'
         WHERE v.node_id IS DISTINCT FROM a.node_id
           AND NOT EXISTS (SELECT 1
                             FROM consumers AS m
                             JOIN operations AS o ON o.id = m.id
                            WHERE m.kind = 'migration' AND o.target_id = v.id::text AND o.state IN ('PENDING', 'RUNNING'))
         GROUP BY v.id, a.node_id, v.node_id
         ORDER BY v.id
        """;

    /// <summary>
    /// A running total in <c>node_usage</c> that is not the sum of the node's allocations of the
    /// class. Overcommit above is judged on the allocations themselves, so a total that drifted
    /// cannot hide one; this says that claims were checked against the wrong figure.
    /// </summary>
    private const string UsageDrift = """
        SELECT coalesce(u.node_id, a.node_id), coalesce(u.resource_class, a.resource_class), coalesce(u.used, 0), coalesce(a.used, 0)
          FROM node_usage AS u
          FULL JOIN (SELECT node_id, resource_class, sum(used)::bigint AS used FROM allocations GROUP BY node_id, resource_class) AS a
            ON a.node_id = u.node_id AND a.resource_class = u.resource_class
         WHERE coalesce(u.used, 0) <> coalesce(a.used, 0)
         ORDER BY 1, 2
        """;

    /// <summary>
    /// A READY snapshot must be where its data is and where it can be used: on a node, that node
    /// UP, and that node its VM's, unless a move of the VM (vm.migrate, or vm.resize, which may
    /// move it) is unfinished. A snapshot whose node is down or lost its data is LOST, not READY.
    /// </summary>
    private const string MisplacedSnapshots = """
        SELECT s.id, s.vm_id, s.node_id, n.name, n.state, v.node_id
          FROM snapshots AS s
          JOIN vms AS v ON v.id = s.vm_id
          LEFT JOIN nodes AS n ON n.id = s.node_id
         WHERE s.state = 'READY'
           AND (s.node_id IS NULL
                OR n.state IS DISTINCT FROM 'UP'
                OR (s.node_id IS DISTINCT FROM v.node_id
                    AND NOT EXISTS (SELECT 1 FROM operations AS o
                                     WHERE o.target_id = v.id::text AND o.kind IN ('vm.migrate', 'vm.resize') AND o.state IN ('PENDING', 'RUNNING'))))
         ORDER BY s.id
        """;

    /// <summary>Runs every check in one snapshot and describes each violation in a sentence.</summary>
    public static async Task<IReadOnlyList<string>> CheckAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        var violations = new List<string>();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        // One snapshot for the checks, so that a claim committing in between cannot make
        // them disagree with each other.
        await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection, transaction)
        {
            BatchCommands = { new(Overcommitted), new(DeadConsumers), new(Misplaced), new(UsageDrift), new(MisplacedSnapshots) },
        };
        await using (var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                violations.Add(string.Format(CultureInfo.InvariantCulture,
                    "overcommit: node {0} ({1}) uses {2} {3} of a capacity of {4}",
                    reader.GetString(0), reader.GetGuid(1), reader.GetInt64(3), reader.GetString(2),
                    reader.IsDBNull(4) ? "0 (no inventory)" : reader.GetInt64(4).ToString(CultureInfo.InvariantCulture)));
            }
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                violations.Add(string.Format(CultureInfo.InvariantCulture,
                    "orphan: consumer {0} (kind {1}) is dead but holds {2} allocation(s)",
                    reader.GetGuid(0), reader.GetString(1), reader.GetInt64(2)));
            }
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                violations.Add(string.Format(CultureInfo.InvariantCulture,
                    "misplaced: VM {0} holds {3} allocation(s) on node {1} but runs on {2}, and no migration is in flight",
                    reader.GetGuid(0), reader.GetGuid(1), reader.IsDBNull(2) ? "no node" : reader.GetGuid(2).ToString(), reader.GetInt64(3)));
            }
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                violations.Add(string.Format(CultureInfo.InvariantCulture,
                    "usage: node {0} counts {2} {1} in use, but its allocations add up to {3}",
                    reader.GetGuid(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3)));
            }
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                violations.Add(DescribeSnapshot(reader));
            }
        }
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return violations;
    }

    private static string DescribeSnapshot(NpgsqlDataReader reader)
    {
        var snapshot = reader.GetGuid(0);
        var vm = reader.GetGuid(1);
        if (reader.IsDBNull(2))
        {
            return string.Format(CultureInfo.InvariantCulture, "snapshot: READY snapshot {0} of VM {1} is on no node", snapshot, vm);
        }
        var node = $"{reader.GetString(3)} ({reader.GetGuid(2)})";
        return reader.GetString(4) != "UP"
            ? string.Format(CultureInfo.InvariantCulture, "snapshot: READY snapshot {0} of VM {1} is on node {2}, which is {3}", snapshot, vm, node, reader.GetString(4))
            : string.Format(CultureInfo.InvariantCulture, "snapshot: READY snapshot {0} of VM {1} is on node {2} but its VM is on {3}, and no migration is in flight",
                snapshot, vm, node, reader.IsDBNull(5) ? "no node" : reader.GetGuid(5).ToString());
    }
}
