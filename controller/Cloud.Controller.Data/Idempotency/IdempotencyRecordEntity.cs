using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

/// <summary>
/// The first answer to a synchronous create sent with an Idempotency-Key (tenants, tokens):
/// what it made, so that a retry answers the same, and for a token its secret sealed under the
/// controller's key. Kept for the idempotency window only, then purged.
/// </summary>
internal sealed class IdempotencyRecordEntity
{
    public string ProjectId { get; set; } = "";

    public string Key { get; set; } = "";

    /// <summary>tenant.create or token.create: the same key for another verb is a reuse.</summary>
    public string Kind { get; set; } = "";

    /// <summary>SHA-256 of the request, hex: the same key with another body is a reuse.</summary>
    public string RequestHash { get; set; } = "";

    /// <summary>The id of what the first request made.</summary>
    public string ResourceId { get; set; } = "";

    /// <summary>A token's secret, sealed with AES-GCM (nonce, tag, ciphertext); null for tenants.</summary>
    public byte[]? SealedSecret { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset ExpiresAt { get; set; }
}

internal sealed class IdempotencyRecordConfiguration : IEntityTypeConfiguration<IdempotencyRecordEntity>
{
    public void Configure(EntityTypeBuilder<IdempotencyRecordEntity> builder)
    {
        builder.ToTable("idempotency_records", t => t.HasCheckConstraint("ck_idempotency_records_window", "expires_at > created_at"));
        builder.HasKey(r => new { r.ProjectId, r.Key }).HasName("pk_idempotency_records");
        builder.Property(r => r.ProjectId).HasColumnName("project_id").HasColumnType("text");
        builder.Property(r => r.Key).HasColumnName("key").HasColumnType("text");
        builder.Property(r => r.Kind).HasColumnName("kind").HasColumnType("text");
        builder.Property(r => r.RequestHash).HasColumnName("request_hash").HasColumnType("text");
        builder.Property(r => r.ResourceId).HasColumnName("resource_id").HasColumnType("text");
        builder.Property(r => r.SealedSecret).HasColumnName("sealed_secret").HasColumnType("bytea");
        builder.Property(r => r.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
        builder.Property(r => r.ExpiresAt).HasColumnName("expires_at").HasColumnType("timestamp with time zone");
        builder.HasIndex(r => r.ExpiresAt).HasDatabaseName("ix_idempotency_records_expires_at");
    }
}
