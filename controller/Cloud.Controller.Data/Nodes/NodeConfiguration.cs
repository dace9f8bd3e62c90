using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

internal sealed class NodeConfiguration : IEntityTypeConfiguration<NodeEntity>
{
    public void Configure(EntityTypeBuilder<NodeEntity> builder)
    {
        builder.ToTable("nodes", t =>
        {
            t.HasCheckConstraint("ck_nodes_name", "char_length(name) BETWEEN 1 AND 63");
            t.HasCheckConstraint("ck_nodes_state", "state IN ('UP', 'DOWN')");
            t.HasCheckConstraint("ck_nodes_generation", "generation >= 0");
        });
        builder.HasKey(n => n.Id).HasName("pk_nodes");
        builder.Property(n => n.Id).HasColumnName("id").HasColumnType("uuid").ValueGeneratedNever();
        builder.Property(n => n.Name).HasColumnName("name").HasColumnType("text");
        builder.Property(n => n.Address).HasColumnName("address").HasColumnType("text");
        builder.Property(n => n.Hypervisor).HasColumnName("hypervisor").HasColumnType("text");
        builder.Property(n => n.Accelerator).HasColumnName("accelerator").HasColumnType("text");
        builder.Property(n => n.AvailabilityZone).HasColumnName("availability_zone").HasColumnType("text");
        builder.Property(n => n.Traits).HasColumnName("traits").HasColumnType("text[]");
        builder.Property(n => n.State).HasColumnName("state").HasColumnType("text");
        builder.Property(n => n.Schedulable).HasColumnName("schedulable").HasColumnType("boolean");
        builder.Property(n => n.Generation).HasColumnName("generation").HasColumnType("bigint");
        builder.Property(n => n.RegisteredAt).HasColumnName("registered_at").HasColumnType("timestamp with time zone");
        builder.Property(n => n.LastHeartbeatAt).HasColumnName("last_heartbeat_at").HasColumnType("timestamp with time zone");
        builder.Property(n => n.HeartbeatSession).HasColumnName("heartbeat_session").HasColumnType("uuid");
        builder.Property(n => n.HeartbeatSequence).HasColumnName("heartbeat_sequence").HasColumnType("bigint");
        builder.HasIndex(n => n.Name).IsUnique().HasDatabaseName("ux_nodes_name");
    }
}
