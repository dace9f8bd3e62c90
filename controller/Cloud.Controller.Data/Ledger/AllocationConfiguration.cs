using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

internal sealed class AllocationConfiguration : IEntityTypeConfiguration<AllocationEntity>
{
    public void Configure(EntityTypeBuilder<AllocationEntity> builder)
    {
        builder.ToTable("allocations", t => t.HasCheckConstraint("ck_allocations_used", "used > 0"));
        builder.HasKey(a => new { a.ConsumerId, a.NodeId, a.ResourceClass }).HasName("pk_allocations");
        builder.Property(a => a.ConsumerId).HasColumnName("consumer_id").HasColumnType("uuid");
        builder.Property(a => a.NodeId).HasColumnName("node_id").HasColumnType("uuid");
        builder.Property(a => a.ResourceClass).HasColumnName("resource_class").HasColumnType("text");
        builder.Property(a => a.Used).HasColumnName("used").HasColumnType("bigint");
        builder.HasIndex(a => a.NodeId).HasDatabaseName("ix_allocations_node_id");
        builder.HasOne<ConsumerEntity>().WithMany().HasForeignKey(a => a.ConsumerId)
            .HasConstraintName("fk_allocations_consumers_consumer_id").OnDelete(DeleteBehavior.Cascade);
        // A node that still holds allocations cannot disappear: its VMs would lose their capacity.
        builder.HasOne<NodeEntity>().WithMany().HasForeignKey(a => a.NodeId)
            .HasConstraintName("fk_allocations_nodes_node_id").OnDelete(DeleteBehavior.Restrict);
    }
}
