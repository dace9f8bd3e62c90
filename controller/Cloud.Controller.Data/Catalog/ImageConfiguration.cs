using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

internal sealed class ImageConfiguration : IEntityTypeConfiguration<ImageEntity>
{
    public void Configure(EntityTypeBuilder<ImageEntity> builder)
    {
        builder.ToTable("images", t =>
        {
            t.HasCheckConstraint("ck_images_format", "format IN ('raw', 'qcow2')");
            t.HasCheckConstraint("ck_images_size_bytes", "size_bytes >= 0");
            t.HasCheckConstraint("ck_images_state", "state IN ('QUEUED', 'SAVING', 'ACTIVE', 'ERROR', 'DELETED')");
            t.HasCheckConstraint("ck_images_visibility", "visibility IN ('private', 'shared', 'public')");
            t.HasCheckConstraint("ck_images_min_disk_gb", "min_disk_gb >= 0 AND virtual_size_bytes >= 0");
        });
        builder.HasKey(i => i.Id).HasName("pk_images");
        builder.Property(i => i.Id).HasColumnName("id").HasColumnType("text");
        builder.Property(i => i.Name).HasColumnName("name").HasColumnType("text");
        builder.Property(i => i.Format).HasColumnName("format").HasColumnType("text");
        builder.Property(i => i.Sha256).HasColumnName("sha256").HasColumnType("text");
        builder.Property(i => i.SizeBytes).HasColumnName("size_bytes").HasColumnType("bigint");
        builder.Property(i => i.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
        // Defaults: the rows that existed before uploads were operators' public, active images.
        builder.Property(i => i.ProjectId).HasColumnName("project_id").HasColumnType("text").HasDefaultValue("admin");
        builder.Property(i => i.Visibility).HasColumnName("visibility").HasColumnType("text").HasDefaultValue(ImageVisibilities.Public);
        builder.Property(i => i.State).HasColumnName("state").HasColumnType("text").HasDefaultValue(ImageStates.Active);
        builder.Property(i => i.MinDiskGb).HasColumnName("min_disk_gb").HasColumnType("bigint").HasDefaultValue(0L);
        builder.Property(i => i.VirtualSizeBytes).HasColumnName("virtual_size_bytes").HasColumnType("bigint").HasDefaultValue(0L);
        builder.Property(i => i.Stored).HasColumnName("stored").HasColumnType("boolean").HasDefaultValue(false);
        builder.Property(i => i.UploadId).HasColumnName("upload_id").HasColumnType("uuid");
        builder.Property(i => i.Error).HasColumnName("error").HasColumnType("text");
        builder.Property(i => i.UpdatedAt).HasColumnName("updated_at").HasColumnType("timestamp with time zone").HasDefaultValueSql("now()");
        builder.Property(i => i.IdempotencyKey).HasColumnName("idempotency_key").HasColumnType("text");
        builder.HasIndex(i => i.ProjectId).HasDatabaseName("ix_images_project_id");
        builder.HasIndex(i => new { i.ProjectId, i.IdempotencyKey }).HasDatabaseName("ux_images_project_id_idempotency_key")
            .IsUnique().HasFilter("idempotency_key IS NOT NULL");
    }
}
