using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

/// <summary>
/// A snapshot of a VM, kept by the agent of the node that holds its data (<see cref="NodeId"/>,
/// the VM's node while all is well); counted by the snapshots quota.
/// </summary>
internal sealed class SnapshotEntity
{
    public Guid Id { get; set; }

    public string ProjectId { get; set; } = "";

    public Guid VmId { get; set; }

    public string Name { get; set; } = "";

    /// <summary>
    /// CREATING, READY, ERROR, DELETING, DELETED, or LOST: its node no longer holds its data (or
    /// is down); <see cref="Error"/> says why. A LOST snapshot whose node reports the data again
    /// is READY again.
    /// </summary>
    public string State { get; set; } = "CREATING";

    /// <summary>
    /// The node whose agent holds the snapshot's data: recorded when it becomes READY, moved with
    /// the VM when a migration lands. Null for a snapshot never taken, or when the node was removed.
    /// </summary>
    public Guid? NodeId { get; set; }

    public bool IncludesMemory { get; set; }

    public long SizeBytes { get; set; }

    public string? Error { get; set; }

    /// <summary>
    /// The node whose image store holds the snapshot's last export (image snap-&lt;id&gt;, made for
    /// a VM created from it), with the export's SHA-256 and size: another node pulls it from
    /// there with these, and a create resumed after a crash finds them here.
    /// </summary>
    public Guid? ExportNodeId { get; set; }

    public string? ExportSha256 { get; set; }

    public long? ExportSizeBytes { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }
}

internal sealed class SnapshotConfiguration : IEntityTypeConfiguration<SnapshotEntity>
{
    public void Configure(EntityTypeBuilder<SnapshotEntity> builder)
    {
        builder.ToTable("snapshots", t =>
        {
            t.HasCheckConstraint("ck_snapshots_state", "state IN ('CREATING', 'READY', 'ERROR', 'DELETING', 'DELETED', 'LOST')");
            t.HasCheckConstraint("ck_snapshots_size_bytes", "size_bytes >= 0");
        });
        builder.HasKey(s => s.Id).HasName("pk_snapshots");
        builder.Property(s => s.Id).HasColumnName("id").HasColumnType("uuid").ValueGeneratedNever();
        builder.Property(s => s.ProjectId).HasColumnName("project_id").HasColumnType("text");
        builder.Property(s => s.VmId).HasColumnName("vm_id").HasColumnType("uuid");
        builder.Property(s => s.Name).HasColumnName("name").HasColumnType("text");
        builder.Property(s => s.State).HasColumnName("state").HasColumnType("text");
        builder.Property(s => s.NodeId).HasColumnName("node_id").HasColumnType("uuid");
        builder.Property(s => s.IncludesMemory).HasColumnName("includes_memory").HasColumnType("boolean");
        builder.Property(s => s.SizeBytes).HasColumnName("size_bytes").HasColumnType("bigint");
        builder.Property(s => s.Error).HasColumnName("error").HasColumnType("text");
        builder.Property(s => s.ExportNodeId).HasColumnName("export_node_id").HasColumnType("uuid");
        builder.Property(s => s.ExportSha256).HasColumnName("export_sha256").HasColumnType("text");
        builder.Property(s => s.ExportSizeBytes).HasColumnName("export_size_bytes").HasColumnType("bigint");
        builder.Property(s => s.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
        builder.Property(s => s.UpdatedAt).HasColumnName("updated_at").HasColumnType("timestamp with time zone");
        builder.HasIndex(s => s.VmId).HasDatabaseName("ix_snapshots_vm_id");
        builder.HasIndex(s => s.NodeId).HasDatabaseName("ix_snapshots_node_id");
        builder.HasOne<VmEntity>().WithMany().HasForeignKey(s => s.VmId)
            .HasConstraintName("fk_snapshots_vms_vm_id").OnDelete(DeleteBehavior.Cascade);
        // A node removed from the cloud takes no snapshot row with it: the row stays, with no
        // node, and the audit calls it LOST.
        builder.HasOne<NodeEntity>().WithMany().HasForeignKey(s => s.NodeId)
            .HasConstraintName("fk_snapshots_nodes_node_id").OnDelete(DeleteBehavior.SetNull);
        builder.HasOne<NodeEntity>().WithMany().HasForeignKey(s => s.ExportNodeId)
            .HasConstraintName("fk_snapshots_nodes_export_node_id").OnDelete(DeleteBehavior.SetNull);
        builder.HasIndex(s => s.ExportNodeId).HasDatabaseName("ix_snapshots_export_node_id");
    }
}
