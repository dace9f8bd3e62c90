using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Where each snapshot's data is (<c>snapshots.node_id</c>) and the LOST state, for a snapshot
/// whose node no longer holds its data or is down (the error column says why). Snapshots that
/// exist already are taken to be on their VM's node, where they were made: the audit then checks
/// that against what the node reports. Written by hand (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026120700000_SnapshotLedger")]
internal sealed class SnapshotLedger : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddColumn<Guid>(name: "node_id", table: "snapshots", type: "uuid", nullable: true);
        migrationBuilder.Sql("""
            UPDATE snapshots AS s SET node_id = v.node_id
              FROM vms AS v
             WHERE v.id = s.vm_id AND s.state <> 'DELETED';

            ALTER TABLE snapshots DROP CONSTRAINT ck_snapshots_state;
            ALTER TABLE snapshots ADD CONSTRAINT ck_snapshots_state CHECK (state IN ('CREATING', 'READY', 'ERROR', 'DELETING', 'DELETED', 'LOST'));
            """);
        migrationBuilder.CreateIndex(name: "ix_snapshots_node_id", table: "snapshots", column: "node_id");
        migrationBuilder.AddForeignKey(name: "fk_snapshots_nodes_node_id", table: "snapshots", column: "node_id",
            principalTable: "nodes", principalColumn: "id", onDelete: ReferentialAction.SetNull);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.DropForeignKey(name: "fk_snapshots_nodes_node_id", table: "snapshots");
        migrationBuilder.DropIndex(name: "ix_snapshots_node_id", table: "snapshots");
        // A LOST snapshot had no place in the old states: ERROR is the nearest, with its reason kept.
        migrationBuilder.Sql("""
            UPDATE snapshots SET state = 'ERROR' WHERE state = 'LOST';
            ALTER TABLE snapshots DROP CONSTRAINT ck_snapshots_state;
            ALTER TABLE snapshots ADD CONSTRAINT ck_snapshots_state CHECK (state IN ('CREATING', 'READY', 'ERROR', 'DELETING', 'DELETED'));
            """);
        migrationBuilder.DropColumn(name: "node_id", table: "snapshots");
    }
}
