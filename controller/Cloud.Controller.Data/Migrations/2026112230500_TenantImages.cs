using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Images tenants upload: an owner, a visibility (with the tenants a shared image is shared with), a life cycle (QUEUED to ACTIVE), the minimum
/// disk, whether the controller's image store holds the bytes, and the create's idempotency key.
/// Existing rows (operator-seeded) become public, ACTIVE images of "admin". Written by hand
/// (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112230500_TenantImages")]
internal sealed class TenantImages : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddColumn<string>(name: "project_id", table: "images", type: "text", nullable: false, defaultValue: "admin");
        migrationBuilder.AddColumn<string>(name: "visibility", table: "images", type: "text", nullable: false, defaultValue: "public");
        migrationBuilder.AddColumn<string>(name: "state", table: "images", type: "text", nullable: false, defaultValue: "ACTIVE");
        migrationBuilder.AddColumn<long>(name: "min_disk_gb", table: "images", type: "bigint", nullable: false, defaultValue: 0L);
        migrationBuilder.AddColumn<long>(name: "virtual_size_bytes", table: "images", type: "bigint", nullable: false, defaultValue: 0L);
        migrationBuilder.AddColumn<bool>(name: "stored", table: "images", type: "boolean", nullable: false, defaultValue: false);
        migrationBuilder.AddColumn<Guid>(name: "upload_id", table: "images", type: "uuid", nullable: true);
        migrationBuilder.AddColumn<string>(name: "error", table: "images", type: "text", nullable: true);
        migrationBuilder.AddColumn<DateTimeOffset>(name: "updated_at", table: "images", type: "timestamp with time zone", nullable: false, defaultValueSql: "now()");
        migrationBuilder.AddColumn<string>(name: "idempotency_key", table: "images", type: "text", nullable: true);
        migrationBuilder.AddCheckConstraint(name: "ck_images_state", table: "images", sql: "state IN ('QUEUED', 'SAVING', 'ACTIVE', 'ERROR', 'DELETED')");
        migrationBuilder.AddCheckConstraint(name: "ck_images_visibility", table: "images", sql: "visibility IN ('private', 'shared', 'public')");
        migrationBuilder.AddCheckConstraint(name: "ck_images_min_disk_gb", table: "images", sql: "min_disk_gb >= 0 AND virtual_size_bytes >= 0");
        migrationBuilder.CreateIndex(name: "ix_images_project_id", table: "images", column: "project_id");
        migrationBuilder.CreateIndex(
            name: "ux_images_project_id_idempotency_key", table: "images", columns: ["project_id", "idempotency_key"],
            unique: true, filter: "idempotency_key IS NOT NULL");

        migrationBuilder.CreateTable(
            name: "image_members",
            columns: table => new
            {
                image_id = table.Column<string>(type: "text", nullable: false),
                tenant_id = table.Column<string>(type: "text", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_image_members", x => new { x.image_id, x.tenant_id });
                table.ForeignKey("fk_image_members_images_image_id", x => x.image_id, "images", "id", onDelete: ReferentialAction.Cascade);
                table.ForeignKey("fk_image_members_tenants_tenant_id", x => x.tenant_id, "tenants", "id", onDelete: ReferentialAction.Cascade);
            });
        migrationBuilder.CreateIndex(name: "ix_image_members_tenant_id", table: "image_members", column: "tenant_id");
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.DropTable(name: "image_members");
        migrationBuilder.DropIndex(name: "ux_images_project_id_idempotency_key", table: "images");
        migrationBuilder.DropIndex(name: "ix_images_project_id", table: "images");
        migrationBuilder.DropCheckConstraint(name: "ck_images_min_disk_gb", table: "images");
        migrationBuilder.DropCheckConstraint(name: "ck_images_visibility", table: "images");
        migrationBuilder.DropCheckConstraint(name: "ck_images_state", table: "images");
        foreach (var column in (string[])["idempotency_key", "updated_at", "error", "upload_id", "stored", "virtual_size_bytes", "min_disk_gb", "state", "visibility", "project_id"])
        {
            migrationBuilder.DropColumn(name: column, table: "images");
        }
    }
}
