using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

/// <summary>A single-use join token for one node name, kept only as its SHA-256.</summary>
internal sealed class NodeJoinTokenEntity
{
    public string TokenSha256 { get; set; } = "";

    public string NodeName { get; set; } = "";

    public string CreatedBy { get; set; } = "";

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset ExpiresAt { get; set; }

    public DateTimeOffset? UsedAt { get; set; }
}

/// <summary>A certificate the cloud CA issued to a node (its agent's or its QEMU's), revoked when the node is deleted.</summary>
internal sealed class NodeCertificateEntity
{
    public string Serial { get; set; } = "";

    public string NodeName { get; set; } = "";

    /// <summary>node or qemu.</summary>
    public string Kind { get; set; } = "";

    public DateTimeOffset IssuedAt { get; set; }

    public DateTimeOffset NotAfter { get; set; }

    public DateTimeOffset? RevokedAt { get; set; }
}

internal sealed class NodeJoinTokenConfiguration : IEntityTypeConfiguration<NodeJoinTokenEntity>
{
    public void Configure(EntityTypeBuilder<NodeJoinTokenEntity> builder)
    {
        builder.ToTable("node_join_tokens");
        builder.HasKey(t => t.TokenSha256).HasName("pk_node_join_tokens");
        builder.Property(t => t.TokenSha256).HasColumnName("token_sha256").HasColumnType("text");
        builder.Property(t => t.NodeName).HasColumnName("node_name").HasColumnType("text");
        builder.Property(t => t.CreatedBy).HasColumnName("created_by").HasColumnType("text");
        builder.Property(t => t.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
        builder.Property(t => t.ExpiresAt).HasColumnName("expires_at").HasColumnType("timestamp with time zone");
        builder.Property(t => t.UsedAt).HasColumnName("used_at").HasColumnType("timestamp with time zone");
        builder.HasIndex(t => t.ExpiresAt).HasDatabaseName("ix_node_join_tokens_expires_at");
    }
}

internal sealed class NodeCertificateConfiguration : IEntityTypeConfiguration<NodeCertificateEntity>
{
    public void Configure(EntityTypeBuilder<NodeCertificateEntity> builder)
    {
        builder.ToTable("node_certificates", t => t.HasCheckConstraint("ck_node_certificates_kind", "kind IN ('node', 'qemu')"));
        builder.HasKey(c => c.Serial).HasName("pk_node_certificates");
        builder.Property(c => c.Serial).HasColumnName("serial").HasColumnType("text");
        builder.Property(c => c.NodeName).HasColumnName("node_name").HasColumnType("text");
        builder.Property(c => c.Kind).HasColumnName("kind").HasColumnType("text");
        builder.Property(c => c.IssuedAt).HasColumnName("issued_at").HasColumnType("timestamp with time zone");
        builder.Property(c => c.NotAfter).HasColumnName("not_after").HasColumnType("timestamp with time zone");
        builder.Property(c => c.RevokedAt).HasColumnName("revoked_at").HasColumnType("timestamp with time zone");
        builder.HasIndex(c => c.NodeName).HasDatabaseName("ix_node_certificates_node_name");
        builder.HasIndex(c => c.NotAfter).HasDatabaseName("ix_node_certificates_revoked").HasFilter("revoked_at IS NOT NULL");
    }
}
