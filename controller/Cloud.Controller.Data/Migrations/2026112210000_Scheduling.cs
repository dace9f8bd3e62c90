using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Scheduling: server groups and their members, host aggregates (which may draw availability
/// zones) and the record of every placement decision (docs/design/006-scheduling.md).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112210000_Scheduling")]
internal sealed class Scheduling : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "server_groups",
            columns: table => new
            {
                id = table.Column<Guid>(type: "uuid", nullable: false),
                project_id = table.Column<string>(type: "text", nullable: false),
                name = table.Column<string>(type: "text", nullable: false),
                policy = table.Column<string>(type: "text", nullable: false),
                max_members = table.Column<int>(type: "integer", nullable: false),
                created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_server_groups", x => x.id);
                table.CheckConstraint("ck_server_groups_policy", "policy IN ('affinity', 'anti-affinity', 'soft-affinity', 'soft-anti-affinity')");
                table.CheckConstraint("ck_server_groups_max_members", "max_members BETWEEN 1 AND 10000");
                table.CheckConstraint("ck_server_groups_name", "char_length(name) BETWEEN 1 AND 63");
            });
        migrationBuilder.CreateIndex(name: "ux_server_groups_project_id_name", table: "server_groups", columns: ["project_id", "name"], unique: true);

        migrationBuilder.CreateTable(
            name: "server_group_members",
            columns: table => new
            {
                group_id = table.Column<Guid>(type: "uuid", nullable: false),
                consumer_id = table.Column<Guid>(type: "uuid", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_server_group_members", x => new { x.group_id, x.consumer_id });
                table.ForeignKey("fk_server_group_members_server_groups_group_id", x => x.group_id, "server_groups", "id", onDelete: ReferentialAction.Cascade);
                table.ForeignKey("fk_server_group_members_consumers_consumer_id", x => x.consumer_id, "consumers", "id", onDelete: ReferentialAction.Cascade);
            });
        migrationBuilder.CreateIndex(name: "ix_server_group_members_consumer_id", table: "server_group_members", column: "consumer_id");

        migrationBuilder.CreateTable(
            name: "aggregates",
            columns: table => new
            {
                id = table.Column<Guid>(type: "uuid", nullable: false),
                name = table.Column<string>(type: "text", nullable: false),
                availability_zone = table.Column<string>(type: "text", nullable: true),
                created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_aggregates", x => x.id);
                table.CheckConstraint("ck_aggregates_name", "char_length(name) BETWEEN 1 AND 63");
                table.CheckConstraint("ck_aggregates_availability_zone", "availability_zone IS NULL OR char_length(availability_zone) BETWEEN 1 AND 63");
            });
        migrationBuilder.CreateIndex(name: "ux_aggregates_name", table: "aggregates", column: "name", unique: true);

        migrationBuilder.CreateTable(
            name: "aggregate_nodes",
            columns: table => new
            {
                aggregate_id = table.Column<Guid>(type: "uuid", nullable: false),
                node_id = table.Column<Guid>(type: "uuid", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_aggregate_nodes", x => new { x.aggregate_id, x.node_id });
                table.ForeignKey("fk_aggregate_nodes_aggregates_aggregate_id", x => x.aggregate_id, "aggregates", "id", onDelete: ReferentialAction.Cascade);
                table.ForeignKey("fk_aggregate_nodes_nodes_node_id", x => x.node_id, "nodes", "id", onDelete: ReferentialAction.Cascade);
            });
        migrationBuilder.CreateIndex(name: "ix_aggregate_nodes_node_id", table: "aggregate_nodes", column: "node_id");

        migrationBuilder.CreateTable(
            name: "placement_decisions",
            columns: table => new
            {
                id = table.Column<Guid>(type: "uuid", nullable: false),
                consumer_id = table.Column<Guid>(type: "uuid", nullable: true),
                project_id = table.Column<string>(type: "text", nullable: false),
                kind = table.Column<string>(type: "text", nullable: false),
                outcome = table.Column<string>(type: "text", nullable: false),
                node_id = table.Column<Guid>(type: "uuid", nullable: true),
                node_name = table.Column<string>(type: "text", nullable: true),
                nodes_considered = table.Column<int>(type: "integer", nullable: false),
                rejections = table.Column<string>(type: "jsonb", nullable: false),
                nearest_miss = table.Column<string>(type: "text", nullable: true),
                summary = table.Column<string>(type: "text", nullable: false),
                request = table.Column<string>(type: "jsonb", nullable: false),
                attempts = table.Column<int>(type: "integer", nullable: false),
                created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_placement_decisions", x => x.id);
                table.CheckConstraint("ck_placement_decisions_kind", "kind IN ('place', 'batch', 'dry-run')");
                table.CheckConstraint("ck_placement_decisions_outcome", "outcome IN ('placed', 'failed')");
            });
        migrationBuilder.CreateIndex(name: "ix_placement_decisions_consumer_id", table: "placement_decisions", column: "consumer_id");
        migrationBuilder.CreateIndex(name: "ix_placement_decisions_project_id_created_at", table: "placement_decisions", columns: ["project_id", "created_at"]);
        migrationBuilder.CreateIndex(name: "ix_placement_decisions_created_at", table: "placement_decisions", column: "created_at");
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.DropTable(name: "placement_decisions");
        migrationBuilder.DropTable(name: "aggregate_nodes");
        migrationBuilder.DropTable(name: "aggregates");
        migrationBuilder.DropTable(name: "server_group_members");
        migrationBuilder.DropTable(name: "server_groups");
    }
}
