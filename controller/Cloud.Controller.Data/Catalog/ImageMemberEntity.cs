using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

/// <summary>A tenant id a shared image is shared with; the tenant need not exist (yet).</summary>
internal sealed class ImageMemberEntity
{
    public string ImageId { get; set; } = "";

    public string TenantId { get; set; } = "";
}

internal sealed class ImageMemberConfiguration : IEntityTypeConfiguration<ImageMemberEntity>
{
    public void Configure(EntityTypeBuilder<ImageMemberEntity> builder)
    {
        builder.ToTable("image_members");
        builder.HasKey(m => new { m.ImageId, m.TenantId }).HasName("pk_image_members");
        builder.Property(m => m.ImageId).HasColumnName("image_id").HasColumnType("text");
        builder.Property(m => m.TenantId).HasColumnName("tenant_id").HasColumnType("text");
        builder.HasIndex(m => m.TenantId).HasDatabaseName("ix_image_members_tenant_id");
        builder.HasOne<ImageEntity>().WithMany().HasForeignKey(m => m.ImageId)
            .HasConstraintName("fk_image_members_images_image_id").OnDelete(DeleteBehavior.Cascade);
        // No key to tenants: a member may name a tenant that does not exist (see ImageMembersAnyTenant).
    }
}
