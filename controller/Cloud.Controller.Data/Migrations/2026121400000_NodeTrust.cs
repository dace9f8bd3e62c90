using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Node identity (docs/security.md): single-use join tokens, each for one node name, kept only
/// as SHA-256; and every certificate the CA issued to a node, so that deleting the node revokes
/// them all. Written by hand (docs/design/002); the model is Trust/NodeTrustEntities.cs.
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026121400000_NodeTrust")]
internal sealed class NodeTrust : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
        => migrationBuilder.Sql(
            """
            CREATE TABLE node_join_tokens (
                token_sha256 text NOT NULL CONSTRAINT pk_node_join_tokens PRIMARY KEY,
                node_name text NOT NULL,
                created_by text NOT NULL,
                created_at timestamptz NOT NULL,
                expires_at timestamptz NOT NULL,
                used_at timestamptz NULL);
            CREATE INDEX ix_node_join_tokens_expires_at ON node_join_tokens (expires_at);
            CREATE TABLE node_certificates (
                serial text NOT NULL CONSTRAINT pk_node_certificates PRIMARY KEY,
                node_name text NOT NULL,
                kind text NOT NULL CONSTRAINT ck_node_certificates_kind CHECK (kind IN ('node', 'qemu')),
                issued_at timestamptz NOT NULL,
                not_after timestamptz NOT NULL,
                revoked_at timestamptz NULL);
            CREATE INDEX ix_node_certificates_node_name ON node_certificates (node_name);
            CREATE INDEX ix_node_certificates_revoked ON node_certificates (not_after) WHERE revoked_at IS NOT NULL;
            """);

    protected override void Down(MigrationBuilder migrationBuilder)
        => migrationBuilder.Sql("DROP TABLE node_certificates; DROP TABLE node_join_tokens;");
}
