using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// The traceparent of the request that started an operation, so that the operation's run, in the
/// background and perhaps on another replica, belongs to the request's trace. Written by hand
/// (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026121000000_OperationTraceParent")]
internal sealed class OperationTraceParent : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
        => migrationBuilder.AddColumn<string>(name: "trace_parent", table: "operations", type: "text", nullable: true);

    protected override void Down(MigrationBuilder migrationBuilder)
        => migrationBuilder.DropColumn(name: "trace_parent", table: "operations");
}
