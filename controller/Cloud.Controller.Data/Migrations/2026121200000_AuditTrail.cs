using System.Net;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// The audit trail: one row per mutating call, refused ones included (who, which tenant, what,
/// from where, the result). Written by hand (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026121200000_AuditTrail")]
internal sealed class AuditTrail : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "audit_events",
            columns: table => new
            {
                id = table.Column<Guid>(type: "uuid", nullable: false),
                time = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                actor = table.Column<string>(type: "text", nullable: false),
                actor_name = table.Column<string>(type: "text", nullable: true),
                role = table.Column<string>(type: "text", nullable: true),
                tenant_id = table.Column<string>(type: "text", nullable: true),
                action = table.Column<string>(type: "text", nullable: false),
                target_id = table.Column<string>(type: "text", nullable: true),
                source_address = table.Column<IPAddress>(type: "inet", nullable: true),
                status = table.Column<int>(type: "integer", nullable: false),
                grpc_status = table.Column<int>(type: "integer", nullable: true),
                trace_id = table.Column<string>(type: "text", nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_audit_events", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_audit_events_tenant_id_id", table: "audit_events", columns: ["tenant_id", "id"]);
        migrationBuilder.CreateIndex(name: "ix_audit_events_time", table: "audit_events", column: "time");
    }

    protected override void Down(MigrationBuilder migrationBuilder)
        => migrationBuilder.DropTable(name: "audit_events");
}
