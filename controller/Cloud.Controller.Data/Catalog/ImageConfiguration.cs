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
        });
        builder.HasKey(i => i.Id).HasName("pk_images");
        builder.Property(i => i.Id).HasColumnName("id").HasColumnType("text");
        builder.Property(i => i.Name).HasColumnName("name").HasColumnType("text");
        builder.Property(i => i.Format).HasColumnName("format").HasColumnType("text");
        builder.Property(i => i.Sha256).HasColumnName("sha256").HasColumnType("text");
        builder.Property(i => i.SizeBytes).HasColumnName("size_bytes").HasColumnType("bigint");
        builder.Property(i => i.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
    }
}
