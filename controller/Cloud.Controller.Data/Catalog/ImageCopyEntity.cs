using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

/// <summary>
/// A node that pulled an uploaded image: where the image's copies are, so that deleting the
/// image can remove them. The row may outlive the copy (the node's own retention removes unused
/// images); asking such a node to remove it again is harmless.
/// </summary>
internal sealed class ImageCopyEntity
{
    public string ImageId { get; set; } = "";

    public Guid NodeId { get; set; }

    public DateTimeOffset PulledAt { get; set; }
}

internal sealed class ImageCopyConfiguration : IEntityTypeConfiguration<ImageCopyEntity>
{
    public void Configure(EntityTypeBuilder<ImageCopyEntity> builder)
    {
        builder.ToTable("image_copies");
        builder.HasKey(c => new { c.ImageId, c.NodeId }).HasName("pk_image_copies");
        builder.Property(c => c.ImageId).HasColumnName("image_id").HasColumnType("text");
        builder.Property(c => c.NodeId).HasColumnName("node_id");
        builder.Property(c => c.PulledAt).HasColumnName("pulled_at");
        builder.HasIndex(c => c.NodeId).HasDatabaseName("ix_image_copies_node_id");
        builder.HasOne<ImageEntity>().WithMany().HasForeignKey(c => c.ImageId)
            .HasConstraintName("fk_image_copies_images_image_id").OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<NodeEntity>().WithMany().HasForeignKey(c => c.NodeId)
            .HasConstraintName("fk_image_copies_nodes_node_id").OnDelete(DeleteBehavior.Cascade);
    }
}
