using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Idempotency records of the synchronous creates (tenants, tokens): the first answer, kept for
/// the idempotency window. Written by hand (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112231000_IdempotencyRecords")]
internal sealed class IdempotencyRecords : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "idempotency_records",
            columns: table => new
            {
                project_id = table.Column<string>(type: "text", nullable: false),
                key = table.Column<string>(type: "text", nullable: false),
                kind = table.Column<string>(type: "text", nullable: false),
                request_hash = table.Column<string>(type: "text", nullable: false),
                resource_id = table.Column<string>(type: "text", nullable: false),
                sealed_secret = table.Column<byte[]>(type: "bytea", nullable: true),
                created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                expires_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_idempotency_records", x => new { x.project_id, x.key });
                table.CheckConstraint("ck_idempotency_records_window", "expires_at > created_at");
            });
        migrationBuilder.CreateIndex(name: "ix_idempotency_records_expires_at", table: "idempotency_records", column: "expires_at");
    }

    protected override void Down(MigrationBuilder migrationBuilder)
        => migrationBuilder.DropTable(name: "idempotency_records");
}
