using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Tenant deletion and tenants' host ids: tenants.deleting_since marks a tenant whose deletion
/// is under way (its tokens are revoked, no token is issued for it), and cloud_secrets keeps the
/// key of the per-tenant host ids, made by the first replica that needs it. Written by hand
/// (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026121300000_TenantDeletion")]
internal sealed class TenantDeletion : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddColumn<DateTimeOffset>(name: "deleting_since", table: "tenants", type: "timestamp with time zone", nullable: true);
        migrationBuilder.CreateTable(
            name: "cloud_secrets",
            columns: table => new
            {
                name = table.Column<string>(type: "text", nullable: false),
                value = table.Column<byte[]>(type: "bytea", nullable: false),
            },
            constraints: table => table.PrimaryKey("pk_cloud_secrets", x => x.name));
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.DropTable(name: "cloud_secrets");
        migrationBuilder.DropColumn(name: "deleting_since", table: "tenants");
    }
}
