using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Each node's usage per resource class as a running total (<c>node_usage</c>), kept by
/// statement triggers on <c>allocations</c>: a claim then checks capacity against one row per
/// node and class, however many VMs the node holds (docs/design/003-capacity-ledger.md).
/// Written by hand (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112310000_NodeUsage")]
internal sealed class NodeUsage : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "node_usage",
            columns: table => new
            {
                node_id = table.Column<Guid>(type: "uuid", nullable: false),
                resource_class = table.Column<string>(type: "text", nullable: false),
                used = table.Column<long>(type: "bigint", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_node_usage", x => new { x.node_id, x.resource_class });
                table.ForeignKey("fk_node_usage_nodes_node_id", x => x.node_id, "nodes", "id", onDelete: ReferentialAction.Cascade);
            });

        // One function per kind of change, each fed the statement's changed rows at once (a
        // transition table), so that a claim of 500 VMs updates each node's total once. The
        // ledger's writers lock the nodes (in id order) before they touch allocations, so the
        // totals' row locks never decide who waits for whom; the inserts still go in (node,
        // class) order, for writers that do not.
        migrationBuilder.Sql("""
            CREATE FUNCTION node_usage_add() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO node_usage (node_id, resource_class, used)
                SELECT node_id, resource_class, sum(used) FROM added GROUP BY node_id, resource_class ORDER BY node_id, resource_class
                ON CONFLICT (node_id, resource_class) DO UPDATE SET used = node_usage.used + excluded.used;
                RETURN NULL;
            END $$;

            CREATE FUNCTION node_usage_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO node_usage (node_id, resource_class, used)
                SELECT node_id, resource_class, sum(used)
                  FROM (SELECT node_id, resource_class, used FROM after_change
                        UNION ALL
                        SELECT node_id, resource_class, -used FROM before_change) AS delta
                 GROUP BY node_id, resource_class
                HAVING sum(used) <> 0
                 ORDER BY node_id, resource_class
                ON CONFLICT (node_id, resource_class) DO UPDATE SET used = node_usage.used + excluded.used;
                RETURN NULL;
            END $$;

            CREATE FUNCTION node_usage_remove() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE node_usage AS u SET used = u.used - r.used
                  FROM (SELECT node_id, resource_class, sum(used) AS used FROM removed GROUP BY node_id, resource_class ORDER BY node_id, resource_class) AS r
                 WHERE u.node_id = r.node_id AND u.resource_class = r.resource_class;
                RETURN NULL;
            END $$;

            CREATE FUNCTION node_usage_clear() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE node_usage SET used = 0 WHERE used <> 0;
                RETURN NULL;
            END $$;

            CREATE TRIGGER allocations_usage_add AFTER INSERT ON allocations
                REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION node_usage_add();
            CREATE TRIGGER allocations_usage_change AFTER UPDATE ON allocations
                REFERENCING OLD TABLE AS before_change NEW TABLE AS after_change FOR EACH STATEMENT EXECUTE FUNCTION node_usage_change();
            CREATE TRIGGER allocations_usage_remove AFTER DELETE ON allocations
                REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION node_usage_remove();
            CREATE TRIGGER allocations_usage_clear AFTER TRUNCATE ON allocations
                FOR EACH STATEMENT EXECUTE FUNCTION node_usage_clear();

            INSERT INTO node_usage (node_id, resource_class, used)
            SELECT node_id, resource_class, sum(used) FROM allocations GROUP BY node_id, resource_class;
            """);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("""
            DROP TRIGGER allocations_usage_clear ON allocations;
            DROP TRIGGER allocations_usage_remove ON allocations;
            DROP TRIGGER allocations_usage_change ON allocations;
            DROP TRIGGER allocations_usage_add ON allocations;
            DROP FUNCTION node_usage_clear();
            DROP FUNCTION node_usage_remove();
            DROP FUNCTION node_usage_change();
            DROP FUNCTION node_usage_add();
            """);
        migrationBuilder.DropTable(name: "node_usage");
    }
}
