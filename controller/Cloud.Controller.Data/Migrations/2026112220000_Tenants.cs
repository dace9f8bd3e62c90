using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Tenants with their quotas and usage, API tokens (hashed), private flavors' access, snapshots, and what operations
/// need for recovery and the one-at-a-time rule. Written by hand (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112220000_Tenants")]
internal sealed class Tenants : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "tenants",
            columns: table => new
            {
                id = table.Column<string>(type: "text", nullable: false),
                display_name = table.Column<string>(type: "text", nullable: false),
                created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                max_instances = table.Column<int>(type: "integer", nullable: false),
                max_vcpus = table.Column<int>(type: "integer", nullable: false),
                max_memory_mb = table.Column<long>(type: "bigint", nullable: false),
                max_disk_gb = table.Column<long>(type: "bigint", nullable: false),
                max_snapshots = table.Column<int>(type: "integer", nullable: false),
                used_instances = table.Column<int>(type: "integer", nullable: false),
                used_vcpus = table.Column<int>(type: "integer", nullable: false),
                used_memory_mb = table.Column<long>(type: "bigint", nullable: false),
                used_disk_gb = table.Column<long>(type: "bigint", nullable: false),
                used_snapshots = table.Column<int>(type: "integer", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_tenants", x => x.id);
                table.CheckConstraint("ck_tenants_id", "id ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'");
                table.CheckConstraint("ck_tenants_max", "max_instances >= 0 AND max_vcpus >= 0 AND max_memory_mb >= 0 AND max_disk_gb >= 0 AND max_snapshots >= 0");
                table.CheckConstraint("ck_tenants_used", "used_instances >= 0 AND used_vcpus >= 0 AND used_memory_mb >= 0 AND used_disk_gb >= 0 AND used_snapshots >= 0");
            });

        migrationBuilder.CreateTable(
            name: "api_tokens",
            columns: table => new
            {
                id = table.Column<Guid>(type: "uuid", nullable: false),
                tenant_id = table.Column<string>(type: "text", nullable: true),
                name = table.Column<string>(type: "text", nullable: false),
                role = table.Column<string>(type: "text", nullable: false),
                token_sha256 = table.Column<string>(type: "text", nullable: false),
                created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                expires_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                revoked_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_api_tokens", x => x.id);
                table.ForeignKey("fk_api_tokens_tenants_tenant_id", x => x.tenant_id, "tenants", "id", onDelete: ReferentialAction.Cascade);
                table.CheckConstraint("ck_api_tokens_role", "role IN ('member', 'reader', 'operator')");
                table.CheckConstraint("ck_api_tokens_tenant", "(role = 'operator') = (tenant_id IS NULL)");
                table.CheckConstraint("ck_api_tokens_sha256", "token_sha256 ~ '^[0-9a-f]{64}$'");
            });
        migrationBuilder.CreateIndex(name: "ux_api_tokens_token_sha256", table: "api_tokens", column: "token_sha256", unique: true);
        migrationBuilder.CreateIndex(name: "ix_api_tokens_tenant_id", table: "api_tokens", column: "tenant_id");

        migrationBuilder.CreateTable(
            name: "flavor_access",
            columns: table => new
            {
                flavor_name = table.Column<string>(type: "text", nullable: false),
                tenant_id = table.Column<string>(type: "text", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_flavor_access", x => new { x.flavor_name, x.tenant_id });
                table.ForeignKey("fk_flavor_access_flavors_flavor_name", x => x.flavor_name, "flavors", "name", onDelete: ReferentialAction.Cascade);
                table.ForeignKey("fk_flavor_access_tenants_tenant_id", x => x.tenant_id, "tenants", "id", onDelete: ReferentialAction.Cascade);
            });
        migrationBuilder.CreateIndex(name: "ix_flavor_access_tenant_id", table: "flavor_access", column: "tenant_id");

        migrationBuilder.CreateTable(
            name: "snapshots",
            columns: table => new
            {
                id = table.Column<Guid>(type: "uuid", nullable: false),
                project_id = table.Column<string>(type: "text", nullable: false),
                vm_id = table.Column<Guid>(type: "uuid", nullable: false),
                name = table.Column<string>(type: "text", nullable: false),
                state = table.Column<string>(type: "text", nullable: false),
                includes_memory = table.Column<bool>(type: "boolean", nullable: false),
                size_bytes = table.Column<long>(type: "bigint", nullable: false),
                error = table.Column<string>(type: "text", nullable: true),
                created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_snapshots", x => x.id);
                table.ForeignKey("fk_snapshots_vms_vm_id", x => x.vm_id, "vms", "id", onDelete: ReferentialAction.Cascade);
                table.CheckConstraint("ck_snapshots_state", "state IN ('CREATING', 'READY', 'ERROR', 'DELETING', 'DELETED')");
                table.CheckConstraint("ck_snapshots_size_bytes", "size_bytes >= 0");
            });
        migrationBuilder.CreateIndex(name: "ix_snapshots_vm_id", table: "snapshots", column: "vm_id");

        migrationBuilder.AddColumn<string>(name: "recovery", table: "operations", type: "text", nullable: true);
        migrationBuilder.AddColumn<string>(name: "request", table: "operations", type: "text", nullable: true);
        migrationBuilder.CreateIndex(
            name: "ix_operations_target_id_unfinished", table: "operations", column: "target_id", filter: "state IN ('PENDING', 'RUNNING')");
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.DropIndex(name: "ix_operations_target_id_unfinished", table: "operations");
        migrationBuilder.DropColumn(name: "request", table: "operations");
        migrationBuilder.DropColumn(name: "recovery", table: "operations");
        migrationBuilder.DropTable(name: "snapshots");
        migrationBuilder.DropTable(name: "flavor_access");
        migrationBuilder.DropTable(name: "api_tokens");
        migrationBuilder.DropTable(name: "tenants");
    }
}
