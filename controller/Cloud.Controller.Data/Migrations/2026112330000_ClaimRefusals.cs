using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// <c>ledger_refuse(refusals)</c>: the claim's statements call it to abort the transaction when
/// a node is stale, missing or full, so that a claim that owns its transaction commits in the
/// same round trip as it claims (docs/design/003-capacity-ledger.md, "One round trip").
/// Written by hand (docs/design/002).
/// </summary>
/// <remarks>
/// The error code and the message's prefix are what <see cref="LedgerSql.RefusedState"/> and
/// <see cref="LedgerSql.RefusedPrefix"/> expect; spelled out here so that the migration stays
/// what it was when it ran.
/// </remarks>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112330000_ClaimRefusals")]
internal sealed class ClaimRefusals : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
        => migrationBuilder.Sql("""
            CREATE FUNCTION ledger_refuse(refusals text) RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION USING ERRCODE = 'LR001', MESSAGE = 'claim refused: ' || refusals;
            END $$;
            """);

    protected override void Down(MigrationBuilder migrationBuilder)
        => migrationBuilder.Sql("DROP FUNCTION ledger_refuse(text);");
}
