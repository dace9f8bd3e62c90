using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

internal sealed class TenantConfiguration : IEntityTypeConfiguration<TenantEntity>
{
    public void Configure(EntityTypeBuilder<TenantEntity> builder)
    {
        builder.ToTable("tenants", t =>
        {
            t.HasCheckConstraint("ck_tenants_id", "id ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'");
            t.HasCheckConstraint("ck_tenants_max", "max_instances >= 0 AND max_vcpus >= 0 AND max_memory_mb >= 0 AND max_disk_gb >= 0 AND max_snapshots >= 0 AND max_images >= 0 AND max_image_gb >= 0");
            // Usage may exceed a quota the operator lowered afterwards, never go negative.
            t.HasCheckConstraint("ck_tenants_used", "used_instances >= 0 AND used_vcpus >= 0 AND used_memory_mb >= 0 AND used_disk_gb >= 0 AND used_snapshots >= 0 AND used_images >= 0 AND used_image_gb >= 0");
        });
        builder.HasKey(t => t.Id).HasName("pk_tenants");
        builder.Property(t => t.Id).HasColumnName("id").HasColumnType("text");
        builder.Property(t => t.DisplayName).HasColumnName("display_name").HasColumnType("text");
        builder.Property(t => t.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
        builder.Property(t => t.MaxInstances).HasColumnName("max_instances").HasColumnType("integer");
        builder.Property(t => t.MaxVcpus).HasColumnName("max_vcpus").HasColumnType("integer");
        builder.Property(t => t.MaxMemoryMb).HasColumnName("max_memory_mb").HasColumnType("bigint");
        builder.Property(t => t.MaxDiskGb).HasColumnName("max_disk_gb").HasColumnType("bigint");
        builder.Property(t => t.MaxSnapshots).HasColumnName("max_snapshots").HasColumnType("integer");
        builder.Property(t => t.UsedInstances).HasColumnName("used_instances").HasColumnType("integer");
        builder.Property(t => t.UsedVcpus).HasColumnName("used_vcpus").HasColumnType("integer");
        builder.Property(t => t.UsedMemoryMb).HasColumnName("used_memory_mb").HasColumnType("bigint");
        builder.Property(t => t.UsedDiskGb).HasColumnName("used_disk_gb").HasColumnType("bigint");
        builder.Property(t => t.UsedSnapshots).HasColumnName("used_snapshots").HasColumnType("integer");
        builder.Property(t => t.MaxImages).HasColumnName("max_images").HasColumnType("integer");
        builder.Property(t => t.MaxImageGb).HasColumnName("max_image_gb").HasColumnType("bigint");
        builder.Property(t => t.UsedImages).HasColumnName("used_images").HasColumnType("integer");
        builder.Property(t => t.UsedImageGb).HasColumnName("used_image_gb").HasColumnType("bigint");
        builder.Property(t => t.DeletingSince).HasColumnName("deleting_since").HasColumnType("timestamp with time zone");
    }
}

internal sealed class ApiTokenConfiguration : IEntityTypeConfiguration<ApiTokenEntity>
{
    public void Configure(EntityTypeBuilder<ApiTokenEntity> builder)
    {
        builder.ToTable("api_tokens", t =>
        {
            t.HasCheckConstraint("ck_api_tokens_role", "role IN ('member', 'reader', 'operator')");
            // An operator token belongs to no tenant; every other token to exactly one.
            t.HasCheckConstraint("ck_api_tokens_tenant", "(role = 'operator') = (tenant_id IS NULL)");
            t.HasCheckConstraint("ck_api_tokens_sha256", "token_sha256 ~ '^[0-9a-f]{64}$'");
        });
        builder.HasKey(t => t.Id).HasName("pk_api_tokens");
        builder.Property(t => t.Id).HasColumnName("id").HasColumnType("uuid").ValueGeneratedNever();
        builder.Property(t => t.TenantId).HasColumnName("tenant_id").HasColumnType("text");
        builder.Property(t => t.Name).HasColumnName("name").HasColumnType("text");
        builder.Property(t => t.Role).HasColumnName("role").HasColumnType("text");
        builder.Property(t => t.TokenSha256).HasColumnName("token_sha256").HasColumnType("text");
        builder.Property(t => t.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
        builder.Property(t => t.ExpiresAt).HasColumnName("expires_at").HasColumnType("timestamp with time zone");
        builder.Property(t => t.RevokedAt).HasColumnName("revoked_at").HasColumnType("timestamp with time zone");
        builder.HasIndex(t => t.TokenSha256).IsUnique().HasDatabaseName("ux_api_tokens_token_sha256");
        builder.HasIndex(t => t.TenantId).HasDatabaseName("ix_api_tokens_tenant_id");
        builder.HasOne<TenantEntity>().WithMany().HasForeignKey(t => t.TenantId)
            .HasConstraintName("fk_api_tokens_tenants_tenant_id").OnDelete(DeleteBehavior.Cascade);
    }
}

/// <summary>A tenant allowed to use a private flavor.</summary>
internal sealed class FlavorAccessEntity
{
    public string FlavorName { get; set; } = "";

    public string TenantId { get; set; } = "";
}

internal sealed class FlavorAccessConfiguration : IEntityTypeConfiguration<FlavorAccessEntity>
{
    public void Configure(EntityTypeBuilder<FlavorAccessEntity> builder)
    {
        builder.ToTable("flavor_access");
        builder.HasKey(a => new { a.FlavorName, a.TenantId }).HasName("pk_flavor_access");
        builder.Property(a => a.FlavorName).HasColumnName("flavor_name").HasColumnType("text");
        builder.Property(a => a.TenantId).HasColumnName("tenant_id").HasColumnType("text");
        builder.HasIndex(a => a.TenantId).HasDatabaseName("ix_flavor_access_tenant_id");
        builder.HasOne<FlavorEntity>().WithMany().HasForeignKey(a => a.FlavorName)
            .HasConstraintName("fk_flavor_access_flavors_flavor_name").OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<TenantEntity>().WithMany().HasForeignKey(a => a.TenantId)
            .HasConstraintName("fk_flavor_access_tenants_tenant_id").OnDelete(DeleteBehavior.Cascade);
    }
}
