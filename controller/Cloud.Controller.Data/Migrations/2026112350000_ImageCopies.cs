using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Where uploaded images were pulled to (<c>image_copies</c>), so that deleting an image
/// removes the nodes' copies too (docs/design/009-tenant-images.md). Copies pulled before this
/// migration are not known; the nodes' retention removes them. Written by hand
/// (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112350000_ImageCopies")]
internal sealed class ImageCopies : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "image_copies",
            columns: table => new
            {
                image_id = table.Column<string>(type: "text", nullable: false),
                node_id = table.Column<Guid>(type: "uuid", nullable: false),
                pulled_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_image_copies", x => new { x.image_id, x.node_id });
                table.ForeignKey("fk_image_copies_images_image_id", x => x.image_id, "images", "id", onDelete: ReferentialAction.Cascade);
                table.ForeignKey("fk_image_copies_nodes_node_id", x => x.node_id, "nodes", "id", onDelete: ReferentialAction.Cascade);
            });
        migrationBuilder.CreateIndex(name: "ix_image_copies_node_id", table: "image_copies", column: "node_id");
    }

    protected override void Down(MigrationBuilder migrationBuilder)
        => migrationBuilder.DropTable(name: "image_copies");
}
