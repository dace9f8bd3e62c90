using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// An image member names a tenant id whether or not that tenant exists, so that sharing answers
/// the same for an unknown tenant as for another tenant's and reveals no tenant ids. Creating a
/// tenant drops the memberships its id had before. Written by hand (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026121100000_ImageMembersAnyTenant")]
internal sealed class ImageMembersAnyTenant : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
        => migrationBuilder.DropForeignKey(name: "fk_image_members_tenants_tenant_id", table: "image_members");

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("DELETE FROM image_members m WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = m.tenant_id)");
        migrationBuilder.AddForeignKey(name: "fk_image_members_tenants_tenant_id", table: "image_members", column: "tenant_id",
            principalTable: "tenants", principalColumn: "id", onDelete: ReferentialAction.Cascade);
    }
}
