using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// The claim as one server-side function, <c>ledger_claim</c> (docs/design/003-capacity-ledger.md,
/// "One round trip"). It refuses by raising, so that a claim that owns its transaction commits
/// in the round trip that makes it; and its statements are planned once per connection, where
/// the same statements sent from the client were planned again at every claim (about 0.6 ms of
/// a one-VM claim). Written by hand (docs/design/002).
/// </summary>
/// <remarks>
/// <para>
/// A refusal raises SQLSTATE LR001 with the message "claim refused: " and "Reason id" pairs
/// separated by ", ", as <see cref="CapacityLedger.ParseRefusals"/> reads it; the reasons are
/// <see cref="ClaimConflictReason"/>'s names, and ConsumerMismatch for a consumer that exists
/// with another kind or project. The capacity is <see cref="LedgerSql.Capacity"/>'s formula.
/// Both are spelled out here so that the migration stays what it was when it ran.
/// </para>
/// <para>
/// Generic plans, without sequential scans: a generic plan is made once, and one made while a
/// table was still small would otherwise scan it whole for the connection's life. Every lookup
/// here has an index to use.
/// </para>
/// </remarks>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112330000_ClaimFunction")]
internal sealed class ClaimFunction : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
        => migrationBuilder.Sql("""
            CREATE FUNCTION ledger_claim(
                p_node_ids uuid[], p_expected bigint[],
                p_consumer_ids uuid[], p_consumer_kinds text[], p_consumer_projects text[], p_now timestamptz,
                p_consumers uuid[], p_nodes uuid[], p_classes text[], p_amounts bigint[])
            RETURNS void LANGUAGE plpgsql
            SET plan_cache_mode = force_generic_plan
            SET enable_seqscan = off
            AS $$
            DECLARE
                refusals text;
            BEGIN
                -- The locks, in id order (rows are locked as they leave the sort), so that two
                -- claims over the same nodes queue instead of deadlocking; before the consumers,
                -- as a release takes the node locks before it deletes its consumer.
                PERFORM 1 FROM nodes WHERE id = ANY(p_node_ids) ORDER BY id FOR NO KEY UPDATE;

                -- The optimistic check: only nodes still at the expected generation (-1: any) are
                -- bumped, once however many claims they take.
                WITH claimed AS (SELECT * FROM unnest(p_node_ids, p_expected) AS c(id, expected)),
                     bumped AS (UPDATE nodes AS n SET generation = n.generation + 1
                                  FROM claimed AS c
                                 WHERE n.id = c.id AND (n.generation = c.expected OR c.expected = -1)
                                RETURNING n.id)
                SELECT string_agg(CASE WHEN n.id IS NULL THEN 'NodeMissing' ELSE 'StaleGeneration' END || ' ' || c.id, ', ')
                  INTO refusals
                  FROM claimed AS c
                  LEFT JOIN LATERAL (SELECT n.id FROM nodes AS n WHERE n.id = c.id LIMIT 1) AS n ON true
                 WHERE NOT EXISTS (SELECT 1 FROM bumped AS b WHERE b.id = c.id);
                IF refusals IS NOT NULL THEN
                    RAISE EXCEPTION USING ERRCODE = 'LR001', MESSAGE = 'claim refused: ' || refusals;
                END IF;

                -- A consumer that exists keeps its kind and project.
                WITH upserted AS (
                     INSERT INTO consumers (id, kind, project_id, created_at, generation)
                     SELECT c.id, c.kind, c.project_id, p_now, 0
                       FROM unnest(p_consumer_ids, p_consumer_kinds, p_consumer_projects) AS c(id, kind, project_id)
                     ON CONFLICT (id) DO UPDATE SET generation = consumers.generation + 1
                      WHERE consumers.kind = excluded.kind AND consumers.project_id = excluded.project_id
                     RETURNING id)
                SELECT string_agg('ConsumerMismatch ' || c.id, ', ')
                  INTO refusals
                  FROM unnest(p_consumer_ids) AS c(id)
                 WHERE NOT EXISTS (SELECT 1 FROM upserted AS u WHERE u.id = c.id);
                IF refusals IS NOT NULL THEN
                    RAISE EXCEPTION USING ERRCODE = 'LR001', MESSAGE = 'claim refused: ' || refusals;
                END IF;

                -- The allocations, added to what each consumer holds, and the unit rules on the
                -- rows as they now stand (a node gone meanwhile was refused above). The triggers
                -- on allocations add the amounts to node_usage as the statement ends.
                WITH added AS (
                     INSERT INTO allocations (consumer_id, node_id, resource_class, used)
                     SELECT a.consumer_id, a.node_id, a.resource_class, a.used
                       FROM unnest(p_consumers, p_nodes, p_classes, p_amounts) AS a(consumer_id, node_id, resource_class, used)
                     ON CONFLICT (consumer_id, node_id, resource_class) DO UPDATE SET used = allocations.used + excluded.used
                     RETURNING node_id, resource_class, used)
                SELECT string_agg(DISTINCT 'InsufficientCapacity ' || d.node_id, ', ')
                  INTO refusals
                  FROM added AS d
                  LEFT JOIN LATERAL (SELECT * FROM inventories AS i
                                      WHERE i.node_id = d.node_id AND i.resource_class = d.resource_class
                                      LIMIT 1) AS i ON true
                 WHERE i.node_id IS NULL OR d.used < i.min_unit OR d.used > i.max_unit OR d.used % i.step_size <> 0;
                IF refusals IS NOT NULL THEN
                    RAISE EXCEPTION USING ERRCODE = 'LR001', MESSAGE = 'claim refused: ' || refusals;
                END IF;

                -- The safety net: every (node, class) touched within capacity, on the totals that
                -- now include this claim. The node locks keep other claims off these totals.
                SELECT string_agg(DISTINCT 'InsufficientCapacity ' || t.node_id, ', ')
                  INTO refusals
                  FROM (SELECT DISTINCT * FROM unnest(p_nodes, p_classes)) AS t(node_id, resource_class)
                 CROSS JOIN LATERAL (SELECT u.used FROM node_usage AS u
                                      WHERE u.node_id = t.node_id AND u.resource_class = t.resource_class
                                      LIMIT 1) AS u
                 CROSS JOIN LATERAL (SELECT floor((i.total - i.reserved) * i.allocation_ratio)::bigint AS capacity FROM inventories AS i
                                      WHERE i.node_id = t.node_id AND i.resource_class = t.resource_class
                                      LIMIT 1) AS c
                 WHERE u.used > c.capacity;
                IF refusals IS NOT NULL THEN
                    RAISE EXCEPTION USING ERRCODE = 'LR001', MESSAGE = 'claim refused: ' || refusals;
                END IF;
            END $$;
            """);

    protected override void Down(MigrationBuilder migrationBuilder)
        => migrationBuilder.Sql("DROP FUNCTION ledger_claim(uuid[], bigint[], uuid[], text[], text[], timestamptz, uuid[], uuid[], text[], bigint[]);");
}
