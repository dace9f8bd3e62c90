namespace Cloud.Controller.Data;

/// <summary>
/// The ledger's SQL, in one place so that the statements that must agree (the capacity formula
/// above all) can be read side by side. Parameters are positional ($1, $2, ...).
/// </summary>
internal static class LedgerSql
{
    /// <summary>
    /// floor((total - reserved) * ratio) in double precision, the same arithmetic as
    /// <see cref="ResourceInventory.Capacity"/>.
    /// </summary>
    public const string Capacity = "floor((i.total - i.reserved) * i.allocation_ratio)::bigint";

    /// <summary>
    /// The function a claim's statements call to refuse it (migration ClaimRefusals): it raises
    /// <see cref="RefusedState"/> with <see cref="RefusedPrefix"/> and the refusals, each a
    /// reason and an id, separated by ", ". Raising rather than returning rows lets a claim that
    /// owns its transaction commit in the same round trip: an error rolls the whole batch back.
    /// </summary>
    public const string Refuse = "ledger_refuse";

    /// <summary>The SQLSTATE of a refused claim, in a class PostgreSQL leaves to applications.</summary>
    public const string RefusedState = "LR001";

    public const string RefusedPrefix = "claim refused: ";

    /// <summary>The refusal of a consumer that exists with another kind or project: a caller bug, not a race.</summary>
    public const string ConsumerMismatch = "ConsumerMismatch";

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
    /// $1 node ids. Locks in id order (the rows are locked as they leave the sort) so that
    /// concurrent batches queue instead of deadlocking. One row back, however many nodes.
    /// </summary>
    public const string LockNodes = """
        SELECT count(*) FROM (SELECT 1 FROM nodes WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE) AS locked
        """;

    /// <summary>
    /// $1 node ids, $2 expected generations (-1: any). The optimistic check: bumps the nodes still
    /// at the expected generation, and refuses the claim (<see cref="Refuse"/>) naming every other
    /// node as stale or missing.
    /// </summary>
    public const string BumpExpectedGenerations = $"""
        WITH claimed AS (SELECT * FROM unnest($1::uuid[], $2::bigint[]) AS c(id, expected)),
             bumped AS (UPDATE nodes AS n SET generation = n.generation + 1
                          FROM claimed AS c
                         WHERE n.id = c.id AND (n.generation = c.expected OR c.expected = -1)
                        RETURNING n.id)
        SELECT {Refuse}(string_agg(CASE WHEN n.id IS NULL THEN '{nameof(ClaimConflictReason.NodeMissing)}'
                                        ELSE '{nameof(ClaimConflictReason.StaleGeneration)}' END || ' ' || c.id, ', '))
          FROM claimed AS c
          LEFT JOIN LATERAL (SELECT n.id FROM nodes AS n WHERE n.id = c.id LIMIT 1) AS n ON true
         WHERE NOT EXISTS (SELECT 1 FROM bumped AS b WHERE b.id = c.id)
        HAVING count(*) > 0
        """;

    /// <summary>
    /// $1 ids, $2 kinds, $3 projects, $4 now. A consumer that exists must keep its kind and
    /// project: one that would change refuses the claim as <see cref="ConsumerMismatch"/>.
    /// </summary>
    public const string UpsertConsumers = $"""
        WITH upserted AS (
             INSERT INTO consumers (id, kind, project_id, created_at, generation)
             SELECT c.id, c.kind, c.project_id, $4, 0
               FROM unnest($1::uuid[], $2::text[], $3::text[]) AS c(id, kind, project_id)
             ON CONFLICT (id) DO UPDATE SET generation = consumers.generation + 1
              WHERE consumers.kind = excluded.kind AND consumers.project_id = excluded.project_id
             RETURNING id)
        SELECT {Refuse}(string_agg('{ConsumerMismatch} ' || c.id, ', '))
          FROM unnest($1::uuid[]) AS c(id)
         WHERE NOT EXISTS (SELECT 1 FROM upserted AS u WHERE u.id = c.id)
        HAVING count(*) > 0
        """;

    /// <summary>
    /// $1 consumers, $2 nodes, $3 classes, $4 amounts. Adds the batch's allocations to what each
    /// consumer already holds, and refuses the claim on the nodes where an allocation now breaks
    /// the node's min_unit, max_unit or step_size, or names a class the node has no inventory of. Rows for
    /// a node that is gone are skipped; the caller's lock on the nodes has seen that already.
    /// The triggers on <c>allocations</c> add the amounts to <c>node_usage</c> as the statement ends.
    /// </summary>
    /// <remarks>
    /// The inventories are looked up row by row (LATERAL ... LIMIT 1): the planner cannot tell
    /// how many rows the insert returns and would otherwise hash the whole inventories table,
    /// 30,000 rows at 10,000 nodes, for every claim.
    /// </remarks>
    public const string AddAllocations = $"""
        WITH added AS (
             INSERT INTO allocations (consumer_id, node_id, resource_class, used)
             SELECT c.consumer_id, c.node_id, c.resource_class, c.used
               FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[]) AS c(consumer_id, node_id, resource_class, used)
              WHERE EXISTS (SELECT 1 FROM nodes AS n WHERE n.id = c.node_id)
             ON CONFLICT (consumer_id, node_id, resource_class) DO UPDATE SET used = allocations.used + excluded.used
             RETURNING node_id, resource_class, used)
        SELECT {Refuse}(string_agg('{nameof(ClaimConflictReason.InsufficientCapacity)} ' || broken.node_id, ', '))
          FROM (SELECT DISTINCT d.node_id
                  FROM added AS d
                  LEFT JOIN LATERAL (SELECT * FROM inventories AS i
                                      WHERE i.node_id = d.node_id AND i.resource_class = d.resource_class
                                      LIMIT 1) AS i ON true
                 WHERE i.node_id IS NULL OR d.used < i.min_unit OR d.used > i.max_unit OR d.used % i.step_size <> 0) AS broken
        HAVING count(*) > 0
        """;

    /// <summary>
    /// $1 nodes, $2 classes: the pairs a claim touched. Refuses the claim on the nodes where one
    /// of those classes is now above capacity. Runs after <see cref="AddAllocations"/> in the same
    /// transaction, so it reads the totals with the claim's amounts in them; callers hold the
    /// nodes' row locks, so no other claim changes these totals meanwhile. Looked up pair by
    /// pair, for the reason <see cref="AddAllocations"/> gives: a plan made while the tables
    /// were small hashed the whole inventories table at every claim.
    /// </summary>
    public const string OverCapacity = $"""
        SELECT {Refuse}(string_agg('{nameof(ClaimConflictReason.InsufficientCapacity)} ' || over.node_id, ', '))
          FROM (SELECT DISTINCT t.node_id
                  FROM (SELECT DISTINCT * FROM unnest($1::uuid[], $2::text[])) AS t(node_id, resource_class)
                 CROSS JOIN LATERAL (SELECT u.used FROM node_usage AS u
                                      WHERE u.node_id = t.node_id AND u.resource_class = t.resource_class
                                      LIMIT 1) AS u
                 CROSS JOIN LATERAL (SELECT {Capacity} AS capacity FROM inventories AS i
                                      WHERE i.node_id = t.node_id AND i.resource_class = t.resource_class
                                      LIMIT 1) AS c
                 WHERE u.used > c.capacity) AS over
        HAVING count(*) > 0
        """;

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
               last_heartbeat_at = excluded.last_heartbeat_at
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
