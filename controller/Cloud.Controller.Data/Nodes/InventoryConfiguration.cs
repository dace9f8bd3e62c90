using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

internal sealed class InventoryConfiguration : IEntityTypeConfiguration<InventoryEntity>
{
    public void Configure(EntityTypeBuilder<InventoryEntity> builder)
    {
        builder.ToTable("inventories", t =>
        {
            t.HasCheckConstraint("ck_inventories_resource_class", "resource_class ~ '^[A-Z][A-Z0-9_]{0,63}$'");
            t.HasCheckConstraint("ck_inventories_total", "total >= 0");
            t.HasCheckConstraint("ck_inventories_reserved", "reserved >= 0 AND reserved <= total");
            t.HasCheckConstraint("ck_inventories_allocation_ratio", "allocation_ratio > 0");
            t.HasCheckConstraint("ck_inventories_min_unit", "min_unit >= 1");
            t.HasCheckConstraint("ck_inventories_max_unit", "max_unit >= min_unit");
            t.HasCheckConstraint("ck_inventories_step_size", "step_size >= 1");
        });
        builder.HasKey(i => new { i.NodeId, i.ResourceClass }).HasName("pk_inventories");
        builder.Property(i => i.NodeId).HasColumnName("node_id").HasColumnType("uuid");
        builder.Property(i => i.ResourceClass).HasColumnName("resource_class").HasColumnType("text");
        builder.Property(i => i.Total).HasColumnName("total").HasColumnType("bigint");
        builder.Property(i => i.Reserved).HasColumnName("reserved").HasColumnType("bigint");
        builder.Property(i => i.AllocationRatio).HasColumnName("allocation_ratio").HasColumnType("double precision");
        builder.Property(i => i.MinUnit).HasColumnName("min_unit").HasColumnType("bigint");
        builder.Property(i => i.MaxUnit).HasColumnName("max_unit").HasColumnType("bigint");
        builder.Property(i => i.StepSize).HasColumnName("step_size").HasColumnType("bigint");
        builder.HasOne<NodeEntity>().WithMany().HasForeignKey(i => i.NodeId)
            .HasConstraintName("fk_inventories_nodes_node_id").OnDelete(DeleteBehavior.Cascade);
    }
}
