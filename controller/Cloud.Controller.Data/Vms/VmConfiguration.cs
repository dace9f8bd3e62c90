using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.ChangeTracking;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

internal sealed class VmConfiguration : IEntityTypeConfiguration<VmEntity>
{
    public void Configure(EntityTypeBuilder<VmEntity> builder)
    {
        builder.ToTable("vms", t =>
        {
            t.HasCheckConstraint("ck_vms_state", "state IN ('PENDING', 'CREATING', 'RUNNING', 'STOPPED', 'ERROR', 'DELETING', 'DELETED')");
            t.HasCheckConstraint("ck_vms_vcpus", "vcpus > 0");
            t.HasCheckConstraint("ck_vms_memory_mb", "memory_mb > 0");
            t.HasCheckConstraint("ck_vms_disk_gb", "disk_gb >= 0");
        });
        builder.HasKey(v => v.Id).HasName("pk_vms");
        builder.Property(v => v.Id).HasColumnName("id").HasColumnType("uuid").ValueGeneratedNever();
        builder.Property(v => v.ProjectId).HasColumnName("project_id").HasColumnType("text");
        builder.Property(v => v.Name).HasColumnName("name").HasColumnType("text");
        builder.Property(v => v.FlavorName).HasColumnName("flavor_name").HasColumnType("text");
        builder.Property(v => v.ImageId).HasColumnName("image_id").HasColumnType("text");
        builder.Property(v => v.State).HasColumnName("state").HasColumnType("text");
        builder.Property(v => v.NodeId).HasColumnName("node_id").HasColumnType("uuid");
        builder.Property(v => v.Vcpus).HasColumnName("vcpus").HasColumnType("integer");
        builder.Property(v => v.MemoryMb).HasColumnName("memory_mb").HasColumnType("bigint");
        builder.Property(v => v.DiskGb).HasColumnName("disk_gb").HasColumnType("bigint");
        // Stored as a JSON object; a converter rather than the provider's dynamic JSON, which
        // would need reflection-based serialization switched on for the whole data source.
        builder.Property(v => v.Labels).HasColumnName("labels").HasColumnType("jsonb")
            .HasConversion(
                labels => JsonSerializer.Serialize(labels, LabelsJson.Options),
                json => JsonSerializer.Deserialize<Dictionary<string, string>>(json, LabelsJson.Options) ?? new Dictionary<string, string>(),
                new ValueComparer<Dictionary<string, string>>(
                    (a, b) => a != null && b != null && a.Count == b.Count && !a.Except(b).Any(),
                    labels => labels.Aggregate(0, (hash, pair) => hash ^ HashCode.Combine(pair.Key, pair.Value)),
                    labels => new Dictionary<string, string>(labels)));
        builder.Property(v => v.UserData).HasColumnName("user_data").HasColumnType("text");
        builder.Property(v => v.Error).HasColumnName("error").HasColumnType("text");
        builder.Property(v => v.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
        builder.Property(v => v.UpdatedAt).HasColumnName("updated_at").HasColumnType("timestamp with time zone");
        builder.Property(v => v.Version).IsRowVersion();
        builder.HasIndex(v => new { v.ProjectId, v.CreatedAt }).HasDatabaseName("ix_vms_project_id_created_at");
        builder.HasIndex(v => v.NodeId).HasDatabaseName("ix_vms_node_id");
        builder.HasOne<NodeEntity>().WithMany().HasForeignKey(v => v.NodeId)
            .HasConstraintName("fk_vms_nodes_node_id").OnDelete(DeleteBehavior.Restrict);
    }
}

internal static class LabelsJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.General);
}
