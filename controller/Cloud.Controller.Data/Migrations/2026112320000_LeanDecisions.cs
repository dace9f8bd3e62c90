using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Cheaper placement decisions: the request and the rejections as json rather than jsonb. They
/// are written whole and read back whole, never queried inside, and parsing them into jsonb was
/// most of the cost of recording a batch's decisions. Written by hand (docs/design/002).
/// </summary>
/// <remarks>One ALTER TABLE for both columns: the table is rewritten once, not twice.</remarks>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112320000_LeanDecisions")]
internal sealed class LeanDecisions : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
        => migrationBuilder.Sql("""
            ALTER TABLE placement_decisions
                ALTER COLUMN rejections TYPE json USING rejections::json,
                ALTER COLUMN request TYPE json USING request::json;
            """);

    protected override void Down(MigrationBuilder migrationBuilder)
        => migrationBuilder.Sql("""
            ALTER TABLE placement_decisions
                ALTER COLUMN rejections TYPE jsonb USING rejections::jsonb,
                ALTER COLUMN request TYPE jsonb USING request::jsonb;
            """);
}
