using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// The first schema: the capacity ledger, the catalog with the standard flavors, VMs and
/// operations. Written by hand (docs/design/002); a test checks that it builds exactly the
/// schema the model describes. Never edit a migration that has shipped: add a new one.
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112200000_Initial")]
internal sealed class Initial : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "nodes",
            columns: table => new
            {
                id = table.Column<Guid>(type: "uuid", nullable: false),
                name = table.Column<string>(type: "text", nullable: false),
                address = table.Column<string>(type: "text", nullable: false),
                hypervisor = table.Column<string>(type: "text", nullable: false),
                accelerator = table.Column<string>(type: "text", nullable: false),
                availability_zone = table.Column<string>(type: "text", nullable: false),
                traits = table.Column<List<string>>(type: "text[]", nullable: false),
                state = table.Column<string>(type: "text", nullable: false),
                schedulable = table.Column<bool>(type: "boolean", nullable: false),
                generation = table.Column<long>(type: "bigint", nullable: false),
                registered_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                last_heartbeat_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_nodes", x => x.id);
                table.CheckConstraint("ck_nodes_name", "char_length(name) BETWEEN 1 AND 63");
                table.CheckConstraint("ck_nodes_state", "state IN ('UP', 'DOWN')");
                table.CheckConstraint("ck_nodes_generation", "generation >= 0");
            });
        migrationBuilder.CreateIndex(name: "ux_nodes_name", table: "nodes", column: "name", unique: true);

        migrationBuilder.CreateTable(
            name: "inventories",
            columns: table => new
            {
                node_id = table.Column<Guid>(type: "uuid", nullable: false),
                resource_class = table.Column<string>(type: "text", nullable: false),
                total = table.Column<long>(type: "bigint", nullable: false),
                reserved = table.Column<long>(type: "bigint", nullable: false),
                allocation_ratio = table.Column<double>(type: "double precision", nullable: false),
                min_unit = table.Column<long>(type: "bigint", nullable: false),
                max_unit = table.Column<long>(type: "bigint", nullable: false),
                step_size = table.Column<long>(type: "bigint", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_inventories", x => new { x.node_id, x.resource_class });
                table.ForeignKey("fk_inventories_nodes_node_id", x => x.node_id, "nodes", "id", onDelete: ReferentialAction.Cascade);
                table.CheckConstraint("ck_inventories_resource_class", "resource_class ~ '^[A-Z][A-Z0-9_]{0,63}$'");
                table.CheckConstraint("ck_inventories_total", "total >= 0");
                table.CheckConstraint("ck_inventories_reserved", "reserved >= 0 AND reserved <= total");
                table.CheckConstraint("ck_inventories_allocation_ratio", "allocation_ratio > 0");
                table.CheckConstraint("ck_inventories_min_unit", "min_unit >= 1");
                table.CheckConstraint("ck_inventories_max_unit", "max_unit >= min_unit");
                table.CheckConstraint("ck_inventories_step_size", "step_size >= 1");
            });

        migrationBuilder.CreateTable(
            name: "consumers",
            columns: table => new
            {
                id = table.Column<Guid>(type: "uuid", nullable: false),
                kind = table.Column<string>(type: "text", nullable: false),
                project_id = table.Column<string>(type: "text", nullable: false),
                created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                generation = table.Column<long>(type: "bigint", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_consumers", x => x.id);
                table.CheckConstraint("ck_consumers_kind", "kind IN ('vm', 'migration')");
                table.CheckConstraint("ck_consumers_generation", "generation >= 0");
            });

        migrationBuilder.CreateTable(
            name: "allocations",
            columns: table => new
            {
                consumer_id = table.Column<Guid>(type: "uuid", nullable: false),
                node_id = table.Column<Guid>(type: "uuid", nullable: false),
                resource_class = table.Column<string>(type: "text", nullable: false),
                used = table.Column<long>(type: "bigint", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_allocations", x => new { x.consumer_id, x.node_id, x.resource_class });
                table.ForeignKey("fk_allocations_consumers_consumer_id", x => x.consumer_id, "consumers", "id", onDelete: ReferentialAction.Cascade);
                table.ForeignKey("fk_allocations_nodes_node_id", x => x.node_id, "nodes", "id", onDelete: ReferentialAction.Restrict);
                table.CheckConstraint("ck_allocations_used", "used > 0");
            });
        migrationBuilder.CreateIndex(name: "ix_allocations_node_id", table: "allocations", column: "node_id");

        migrationBuilder.CreateTable(
            name: "flavors",
            columns: table => new
            {
                name = table.Column<string>(type: "text", nullable: false),
                vcpus = table.Column<int>(type: "integer", nullable: false),
                memory_mb = table.Column<long>(type: "bigint", nullable: false),
                disk_gb = table.Column<long>(type: "bigint", nullable: false),
                is_public = table.Column<bool>(type: "boolean", nullable: false),
                created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_flavors", x => x.name);
                table.CheckConstraint("ck_flavors_vcpus", "vcpus > 0");
                table.CheckConstraint("ck_flavors_memory_mb", "memory_mb > 0");
                table.CheckConstraint("ck_flavors_disk_gb", "disk_gb >= 0");
            });

        migrationBuilder.CreateTable(
            name: "images",
            columns: table => new
            {
                id = table.Column<string>(type: "text", nullable: false),
                name = table.Column<string>(type: "text", nullable: false),
                format = table.Column<string>(type: "text", nullable: false),
                sha256 = table.Column<string>(type: "text", nullable: false),
                size_bytes = table.Column<long>(type: "bigint", nullable: false),
                created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_images", x => x.id);
                table.CheckConstraint("ck_images_format", "format IN ('raw', 'qcow2')");
                table.CheckConstraint("ck_images_size_bytes", "size_bytes >= 0");
            });

        migrationBuilder.CreateTable(
            name: "vms",
            columns: table => new
            {
                id = table.Column<Guid>(type: "uuid", nullable: false),
                project_id = table.Column<string>(type: "text", nullable: false),
                name = table.Column<string>(type: "text", nullable: false),
                flavor_name = table.Column<string>(type: "text", nullable: false),
                image_id = table.Column<string>(type: "text", nullable: true),
                state = table.Column<string>(type: "text", nullable: false),
                node_id = table.Column<Guid>(type: "uuid", nullable: true),
                vcpus = table.Column<int>(type: "integer", nullable: false),
                memory_mb = table.Column<long>(type: "bigint", nullable: false),
                disk_gb = table.Column<long>(type: "bigint", nullable: false),
                labels = table.Column<string>(type: "jsonb", nullable: false),
                user_data = table.Column<string>(type: "text", nullable: true),
                error = table.Column<string>(type: "text", nullable: true),
                created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_vms", x => x.id);
                table.ForeignKey("fk_vms_nodes_node_id", x => x.node_id, "nodes", "id", onDelete: ReferentialAction.Restrict);
                table.CheckConstraint("ck_vms_state", "state IN ('PENDING', 'CREATING', 'RUNNING', 'STOPPED', 'ERROR', 'DELETING', 'DELETED')");
                table.CheckConstraint("ck_vms_vcpus", "vcpus > 0");
                table.CheckConstraint("ck_vms_memory_mb", "memory_mb > 0");
                table.CheckConstraint("ck_vms_disk_gb", "disk_gb >= 0");
            });
        migrationBuilder.CreateIndex(name: "ix_vms_project_id_created_at", table: "vms", columns: ["project_id", "created_at"]);
        migrationBuilder.CreateIndex(name: "ix_vms_node_id", table: "vms", column: "node_id");

        migrationBuilder.CreateTable(
            name: "operations",
            columns: table => new
            {
                id = table.Column<Guid>(type: "uuid", nullable: false),
                project_id = table.Column<string>(type: "text", nullable: false),
                kind = table.Column<string>(type: "text", nullable: false),
                target_id = table.Column<string>(type: "text", nullable: false),
                state = table.Column<string>(type: "text", nullable: false),
                progress = table.Column<int>(type: "integer", nullable: false),
                error_code = table.Column<string>(type: "text", nullable: true),
                error_message = table.Column<string>(type: "text", nullable: true),
                idempotency_key = table.Column<string>(type: "text", nullable: true),
                request_hash = table.Column<string>(type: "text", nullable: true),
                created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                owner = table.Column<string>(type: "text", nullable: true),
                lease_expires_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_operations", x => x.id);
                table.CheckConstraint("ck_operations_state", "state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')");
                table.CheckConstraint("ck_operations_progress", "progress BETWEEN 0 AND 100");
            });
        migrationBuilder.CreateIndex(
            name: "ux_operations_project_id_idempotency_key", table: "operations", columns: ["project_id", "idempotency_key"],
            unique: true, filter: "idempotency_key IS NOT NULL");
        migrationBuilder.CreateIndex(
            name: "ix_operations_state", table: "operations", column: "state", filter: "state IN ('PENDING', 'RUNNING')");

        var seededAt = new DateTimeOffset(2026, 11, 22, 0, 0, 0, TimeSpan.Zero);
        migrationBuilder.InsertData(
            table: "flavors",
            columns: ["name", "vcpus", "memory_mb", "disk_gb", "is_public", "created_at"],
            columnTypes: ["text", "integer", "bigint", "bigint", "boolean", "timestamp with time zone"],
            values: new object[,]
            {
                { "m1.tiny", 1, 512L, 1L, true, seededAt },
                { "m1.small", 1, 2048L, 20L, true, seededAt },
                { "m1.medium", 2, 4096L, 40L, true, seededAt },
                { "m1.large", 4, 8192L, 80L, true, seededAt },
                { "m1.xlarge", 8, 16384L, 160L, true, seededAt },
            });
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.DropTable(name: "operations");
        migrationBuilder.DropTable(name: "vms");
        migrationBuilder.DropTable(name: "images");
        migrationBuilder.DropTable(name: "flavors");
        migrationBuilder.DropTable(name: "allocations");
        migrationBuilder.DropTable(name: "consumers");
        migrationBuilder.DropTable(name: "inventories");
        migrationBuilder.DropTable(name: "nodes");
    }
}
