using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Where a snapshot's export is, and its SHA-256 and size, so that a VM created from the snapshot
/// can go to any node: that node pulls the export from the exporting node's store with these,
/// and a create resumed after a crash finds them again (the agent answers ALREADY_EXISTS to a
/// second export, without them). Written by hand (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026120710000_SnapshotExports")]
internal sealed class SnapshotExports : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddColumn<Guid>(name: "export_node_id", table: "snapshots", type: "uuid", nullable: true);
        migrationBuilder.AddColumn<string>(name: "export_sha256", table: "snapshots", type: "text", nullable: true);
        migrationBuilder.AddColumn<long>(name: "export_size_bytes", table: "snapshots", type: "bigint", nullable: true);
        migrationBuilder.CreateIndex(name: "ix_snapshots_export_node_id", table: "snapshots", column: "export_node_id");
        migrationBuilder.AddForeignKey(name: "fk_snapshots_nodes_export_node_id", table: "snapshots", column: "export_node_id",
            principalTable: "nodes", principalColumn: "id", onDelete: ReferentialAction.SetNull);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.DropForeignKey(name: "fk_snapshots_nodes_export_node_id", table: "snapshots");
        migrationBuilder.DropIndex(name: "ix_snapshots_export_node_id", table: "snapshots");
        migrationBuilder.DropColumn(name: "export_size_bytes", table: "snapshots");
        migrationBuilder.DropColumn(name: "export_sha256", table: "snapshots");
        migrationBuilder.DropColumn(name: "export_node_id", table: "snapshots");
    }
}
