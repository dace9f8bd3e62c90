using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

internal sealed class NodeUsageConfiguration : IEntityTypeConfiguration<NodeUsageEntity>
{
    public void Configure(EntityTypeBuilder<NodeUsageEntity> builder)
    {
        builder.ToTable("node_usage");
        builder.HasKey(u => new { u.NodeId, u.ResourceClass }).HasName("pk_node_usage");
        builder.Property(u => u.NodeId).HasColumnName("node_id").HasColumnType("uuid");
        builder.Property(u => u.ResourceClass).HasColumnName("resource_class").HasColumnType("text");
        builder.Property(u => u.Used).HasColumnName("used").HasColumnType("bigint");
        builder.HasOne<NodeEntity>().WithMany().HasForeignKey(u => u.NodeId)
            .HasConstraintName("fk_node_usage_nodes_node_id").OnDelete(DeleteBehavior.Cascade);
    }
}
