using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Heartbeats numbered within a session issued at registration, so that an old heartbeat that
/// arrives late is known as old. Written by hand (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112300000_HeartbeatSessions")]
internal sealed class HeartbeatSessions : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddColumn<Guid>(name: "heartbeat_session", table: "nodes", type: "uuid", nullable: true);
        migrationBuilder.AddColumn<long>(name: "heartbeat_sequence", table: "nodes", type: "bigint", nullable: true);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.DropColumn(name: "heartbeat_sequence", table: "nodes");
        migrationBuilder.DropColumn(name: "heartbeat_session", table: "nodes");
    }
}
