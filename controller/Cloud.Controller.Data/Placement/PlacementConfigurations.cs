using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

internal sealed class ServerGroupConfiguration : IEntityTypeConfiguration<ServerGroupEntity>
{
    public void Configure(EntityTypeBuilder<ServerGroupEntity> builder)
    {
        builder.ToTable("server_groups", t =>
        {
            t.HasCheckConstraint("ck_server_groups_policy", "policy IN ('affinity', 'anti-affinity', 'soft-affinity', 'soft-anti-affinity')");
            t.HasCheckConstraint("ck_server_groups_max_members", "max_members BETWEEN 1 AND 10000");
            t.HasCheckConstraint("ck_server_groups_name", "char_length(name) BETWEEN 1 AND 63");
        });
        builder.HasKey(g => g.Id).HasName("pk_server_groups");
        builder.Property(g => g.Id).HasColumnName("id").HasColumnType("uuid").ValueGeneratedNever();
        builder.Property(g => g.ProjectId).HasColumnName("project_id").HasColumnType("text");
        builder.Property(g => g.Name).HasColumnName("name").HasColumnType("text");
        builder.Property(g => g.Policy).HasColumnName("policy").HasColumnType("text");
        builder.Property(g => g.MaxMembers).HasColumnName("max_members").HasColumnType("integer");
        builder.Property(g => g.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
        builder.HasIndex(g => new { g.ProjectId, g.Name }).IsUnique().HasDatabaseName("ux_server_groups_project_id_name");
    }
}

internal sealed class ServerGroupMemberConfiguration : IEntityTypeConfiguration<ServerGroupMemberEntity>
{
    public void Configure(EntityTypeBuilder<ServerGroupMemberEntity> builder)
    {
        builder.ToTable("server_group_members");
        builder.HasKey(m => new { m.GroupId, m.ConsumerId }).HasName("pk_server_group_members");
        builder.Property(m => m.GroupId).HasColumnName("group_id").HasColumnType("uuid");
        builder.Property(m => m.ConsumerId).HasColumnName("consumer_id").HasColumnType("uuid");
        builder.HasIndex(m => m.ConsumerId).HasDatabaseName("ix_server_group_members_consumer_id");
        builder.HasOne<ServerGroupEntity>().WithMany().HasForeignKey(m => m.GroupId)
            .HasConstraintName("fk_server_group_members_server_groups_group_id").OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<ConsumerEntity>().WithMany().HasForeignKey(m => m.ConsumerId)
            .HasConstraintName("fk_server_group_members_consumers_consumer_id").OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class AggregateConfiguration : IEntityTypeConfiguration<AggregateEntity>
{
    public void Configure(EntityTypeBuilder<AggregateEntity> builder)
    {
        builder.ToTable("aggregates", t =>
        {
            t.HasCheckConstraint("ck_aggregates_name", "char_length(name) BETWEEN 1 AND 63");
            t.HasCheckConstraint("ck_aggregates_availability_zone", "availability_zone IS NULL OR char_length(availability_zone) BETWEEN 1 AND 63");
        });
        builder.HasKey(a => a.Id).HasName("pk_aggregates");
        builder.Property(a => a.Id).HasColumnName("id").HasColumnType("uuid").ValueGeneratedNever();
        builder.Property(a => a.Name).HasColumnName("name").HasColumnType("text");
        builder.Property(a => a.AvailabilityZone).HasColumnName("availability_zone").HasColumnType("text");
        builder.Property(a => a.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
        builder.HasIndex(a => a.Name).IsUnique().HasDatabaseName("ux_aggregates_name");
    }
}

internal sealed class AggregateNodeConfiguration : IEntityTypeConfiguration<AggregateNodeEntity>
{
    public void Configure(EntityTypeBuilder<AggregateNodeEntity> builder)
    {
        builder.ToTable("aggregate_nodes");
        builder.HasKey(m => new { m.AggregateId, m.NodeId }).HasName("pk_aggregate_nodes");
        builder.Property(m => m.AggregateId).HasColumnName("aggregate_id").HasColumnType("uuid");
        builder.Property(m => m.NodeId).HasColumnName("node_id").HasColumnType("uuid");
        builder.HasIndex(m => m.NodeId).HasDatabaseName("ix_aggregate_nodes_node_id");
        builder.HasOne<AggregateEntity>().WithMany().HasForeignKey(m => m.AggregateId)
            .HasConstraintName("fk_aggregate_nodes_aggregates_aggregate_id").OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<NodeEntity>().WithMany().HasForeignKey(m => m.NodeId)
            .HasConstraintName("fk_aggregate_nodes_nodes_node_id").OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class PlacementDecisionConfiguration : IEntityTypeConfiguration<PlacementDecisionEntity>
{
    public void Configure(EntityTypeBuilder<PlacementDecisionEntity> builder)
    {
        builder.ToTable("placement_decisions", t =>
        {
            t.HasCheckConstraint("ck_placement_decisions_kind", "kind IN ('place', 'batch', 'dry-run')");
            t.HasCheckConstraint("ck_placement_decisions_outcome", "outcome IN ('placed', 'failed')");
        });
        builder.HasKey(d => d.Id).HasName("pk_placement_decisions");
        builder.Property(d => d.Id).HasColumnName("id").HasColumnType("uuid").ValueGeneratedNever();
        builder.Property(d => d.ConsumerId).HasColumnName("consumer_id").HasColumnType("uuid");
        builder.Property(d => d.ProjectId).HasColumnName("project_id").HasColumnType("text");
        builder.Property(d => d.Kind).HasColumnName("kind").HasColumnType("text");
        builder.Property(d => d.Outcome).HasColumnName("outcome").HasColumnType("text");
        builder.Property(d => d.NodeId).HasColumnName("node_id").HasColumnType("uuid");
        builder.Property(d => d.NodeName).HasColumnName("node_name").HasColumnType("text");
        builder.Property(d => d.NodesConsidered).HasColumnName("nodes_considered").HasColumnType("integer");
        // json, not jsonb: written whole and read back whole, never queried inside, so the parse
        // into jsonb's binary form on every insert buys nothing (docs/design/006).
        builder.Property(d => d.Rejections).HasColumnName("rejections").HasColumnType("json");
        builder.Property(d => d.NearestMiss).HasColumnName("nearest_miss").HasColumnType("text");
        builder.Property(d => d.Summary).HasColumnName("summary").HasColumnType("text");
        builder.Property(d => d.Request).HasColumnName("request").HasColumnType("json");
        builder.Property(d => d.Attempts).HasColumnName("attempts").HasColumnType("integer");
        builder.Property(d => d.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
        builder.HasIndex(d => d.ConsumerId).HasDatabaseName("ix_placement_decisions_consumer_id");
        builder.HasIndex(d => new { d.ProjectId, d.CreatedAt }).HasDatabaseName("ix_placement_decisions_project_id_created_at");
        builder.HasIndex(d => d.CreatedAt).HasDatabaseName("ix_placement_decisions_created_at");
    }
}
