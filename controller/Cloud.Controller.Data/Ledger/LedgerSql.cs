namespace Cloud.Controller.Data;

/// <summary>
/// The ledger's SQL, in one place so that the statements that must agree (the capacity formula
/// above all) can be read side by side. Parameters are positional ($1, $2, ...).
/// </summary>
internal static class LedgerSql
{
    /// <summary>
    /// floor((total - reserved) * ratio) in double precision, the same arithmetic as
    /// <see cref="ResourceInventory.Capacity"/> and the function <c>ledger_claim</c>.
    /// </summary>
    public const string Capacity = "floor((i.total - i.reserved) * i.allocation_ratio)::bigint";

    /// <summary>
    /// The SQLSTATE of a refused claim, in a class PostgreSQL leaves to applications. Its message
    /// is <see cref="RefusedPrefix"/> then "Reason id" pairs separated by ", ". Raising rather
    /// than returning rows lets a claim that owns its transaction commit in the same round trip:
    /// an error rolls the whole batch back.
    /// </summary>
    public const string RefusedState = "LR001";

    public const string RefusedPrefix = "claim refused: ";

    /// <summary>The refusal of a consumer that exists with another kind or project: a caller bug, not a race.</summary>
    public const string ConsumerMismatch = "ConsumerMismatch";

    /// <summary>The channel PostgreSQL notifies when a node appears, goes, changes state or flag, or changes aggregates (migration NodeChangeNotifications).</summary>
    public const string NodesChangedChannel = "cloud_nodes_changed";

    /// <summary>
    /// What tells a node's place in the scheduler's view has changed: every change to its
    /// capacity, usage, inventories, attributes or aggregates bumps its generation; its state
    /// and schedulable flag change alone. A few bytes per node, no join.
    /// </summary>
    public const string NodeVersions = "SELECT id, generation, state, schedulable FROM nodes";

    /// <summary>
    /// One row per node with its inventories and usage as parallel arrays: one statement, so
    /// one snapshot, and a few bytes per node rather than one row per node and class.
    /// </summary>
    /// <remarks>With <paramref name="someNodes"/>, $1 is the array of the nodes to load.</remarks>
    public static string Load(bool someNodes)
    {
        var inner = someNodes ? "WHERE node_id = ANY($1)" : "";
        var outer = someNodes ? "WHERE n.id = ANY($1)" : "";
        var usage = someNodes ? "AND node_id = ANY($1)" : "";
        // An aggregate with a zone puts its nodes in that zone, whatever their agents report.
        var aggregates = someNodes ? "WHERE an.node_id = ANY($1)" : "";
        return $"""
            SELECT n.id, n.name, n.address, n.state, n.schedulable, coalesce(g.zone, n.availability_zone), n.traits, n.generation,
                   i.classes, i.totals, i.reserved, i.ratios, i.min_units, i.max_units, i.step_sizes,
                   u.classes, u.used, n.hypervisor, g.names
              FROM nodes AS n
              LEFT JOIN (SELECT node_id,
                                array_agg(resource_class ORDER BY resource_class) AS classes,
                                array_agg(total ORDER BY resource_class) AS totals,
                                array_agg(reserved ORDER BY resource_class) AS reserved,
                                array_agg(allocation_ratio ORDER BY resource_class) AS ratios,
                                array_agg(min_unit ORDER BY resource_class) AS min_units,
                                array_agg(max_unit ORDER BY resource_class) AS max_units,
                                array_agg(step_size ORDER BY resource_class) AS step_sizes
                           FROM inventories {inner}
                          GROUP BY node_id) AS i ON i.node_id = n.id
              LEFT JOIN (SELECT node_id, array_agg(resource_class) AS classes, array_agg(used) AS used
                           FROM node_usage
                          WHERE used <> 0 {usage}
                          GROUP BY node_id) AS u ON u.node_id = n.id
              LEFT JOIN (SELECT an.node_id, array_agg(ag.name ORDER BY ag.name) AS names, max(ag.availability_zone) AS zone
                           FROM aggregate_nodes AS an JOIN aggregates AS ag ON ag.id = an.aggregate_id {aggregates}
                          GROUP BY an.node_id) AS g ON g.node_id = n.id
             {outer}
             ORDER BY n.name
            """;
    }

    /// <summary>
    /// $1 node ids, $2 their expected generations (-1: any); $3 consumer ids, $4 kinds, $5
    /// projects, $6 now; $7 to $10 the allocations (consumer, node, class, amount). The claim's
    /// steps run in the function <c>ledger_claim</c> (migration ClaimFunction), which raises
    /// <see cref="RefusedState"/> to refuse.
    /// </summary>
    public const string Claim = "SELECT ledger_claim($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

    /// <summary>$1 consumer.</summary>
    public const string LockConsumerNodes = """
        SELECT id FROM nodes
         WHERE id IN (SELECT node_id FROM allocations WHERE consumer_id = $1)
         ORDER BY id FOR NO KEY UPDATE
        """;

    /// <summary>$1 consumer. Returns the nodes bumped.</summary>
    public const string BumpConsumerNodes = """
        UPDATE nodes SET generation = generation + 1
         WHERE id IN (SELECT node_id FROM allocations WHERE consumer_id = $1)
        RETURNING id
        """;

    /// <summary>$1 consumer. Its allocations go with it (ON DELETE CASCADE).</summary>
    public const string DeleteConsumer = "DELETE FROM consumers WHERE id = $1";

    /// <summary>
    /// $1 new id, $2 name, $3 address, $4 hypervisor, $5 accelerator, $6 zone, $7 traits, $8 now.
    /// Returns the id and whether the row is new (xmax is 0 only for a row this statement inserted).
    /// </summary>
    public const string UpsertNode = """
        INSERT INTO nodes (id, name, address, hypervisor, accelerator, availability_zone, traits, state, schedulable, generation, registered_at, last_heartbeat_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, 'UP', true, 0, $8, $8)
        ON CONFLICT (name) DO UPDATE
           SET address = excluded.address, hypervisor = excluded.hypervisor, accelerator = excluded.accelerator,
               availability_zone = excluded.availability_zone, traits = excluded.traits, state = 'UP',
               last_heartbeat_at = excluded.last_heartbeat_at,
               -- What the scheduler's view holds of the node changed: replicas reload it (NodeVersions).
               generation = nodes.generation
                   + CASE WHEN (nodes.address, nodes.hypervisor, nodes.accelerator, nodes.availability_zone, nodes.traits)
                               IS DISTINCT FROM (excluded.address, excluded.hypervisor, excluded.accelerator, excluded.availability_zone, excluded.traits)
                          THEN 1 ELSE 0 END
        RETURNING id, xmax = 0 AS inserted
        """;

    /// <summary>$1 node name.</summary>
    public const string NodeInventories = """
        SELECT i.resource_class, i.total, i.reserved, i.allocation_ratio, i.min_unit, i.max_unit, i.step_size
          FROM inventories AS i JOIN nodes AS n ON n.id = i.node_id
         WHERE n.name = $1
        """;

    /// <summary>$1 node, $2 classes to keep.</summary>
    public const string DeleteOtherInventories = "DELETE FROM inventories WHERE node_id = $1 AND resource_class <> ALL($2::text[])";

    /// <summary>$1 node, $2.. $8 classes, totals, reserved, ratios, min units, max units, step sizes.</summary>
    public const string UpsertInventories = """
        INSERT INTO inventories (node_id, resource_class, total, reserved, allocation_ratio, min_unit, max_unit, step_size)
        SELECT $1, v.resource_class, v.total, v.reserved, v.allocation_ratio, v.min_unit, v.max_unit, v.step_size
          FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::float8[], $6::bigint[], $7::bigint[], $8::bigint[])
               AS v(resource_class, total, reserved, allocation_ratio, min_unit, max_unit, step_size)
        ON CONFLICT (node_id, resource_class) DO UPDATE
           SET total = excluded.total, reserved = excluded.reserved, allocation_ratio = excluded.allocation_ratio,
               min_unit = excluded.min_unit, max_unit = excluded.max_unit, step_size = excluded.step_size
        """;

    /// <summary>$1 node.</summary>
    public const string BumpNode = "UPDATE nodes SET generation = generation + 1 WHERE id = $1";

    /// <summary>$1 node. Classes whose usage exceeds capacity: class, capacity, used.</summary>
    public const string OvercommittedClasses = $"""
        SELECT a.resource_class, coalesce({Capacity}, 0), a.used
          FROM node_usage AS a
          LEFT JOIN inventories AS i ON i.node_id = $1 AND i.resource_class = a.resource_class
         WHERE a.node_id = $1 AND a.used <> 0 AND (i.node_id IS NULL OR a.used > {Capacity})
        """;

    /// <summary>
    /// $1 node, $2 now, $3 the heartbeat's session (null: none), $4 its number. Returns the
    /// previous heartbeat's time and whether this one is new; an old one changes nothing.
    /// </summary>
    public const string TouchHeartbeat = """
        WITH previous AS (
             SELECT id, last_heartbeat_at,
                    $3::uuid IS NULL OR (heartbeat_session = $3 AND (heartbeat_sequence IS NULL OR $4 > heartbeat_sequence)) AS fresh
               FROM nodes WHERE id = $1 FOR UPDATE),
        touched AS (
             UPDATE nodes AS n SET last_heartbeat_at = $2, state = 'UP', heartbeat_sequence = coalesce($4, n.heartbeat_sequence)
               FROM previous AS p
              WHERE n.id = p.id AND p.fresh
             RETURNING n.id)
        SELECT last_heartbeat_at, fresh FROM previous
        """;

    /// <summary>$1 node. A new heartbeat session, numbered from the start; returns it.</summary>
    public const string StartHeartbeatSession = """
        UPDATE nodes SET heartbeat_session = gen_random_uuid(), heartbeat_sequence = NULL
         WHERE id = $1
        RETURNING heartbeat_session
        """;

    /// <summary>$1 cutoff.</summary>
    public const string MarkStaleNodesDown = """
        UPDATE nodes SET state = 'DOWN'
         WHERE state = 'UP' AND (last_heartbeat_at IS NULL OR last_heartbeat_at < $1)
        """;
}
