using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

internal sealed class OperationConfiguration : IEntityTypeConfiguration<OperationEntity>
{
    public void Configure(EntityTypeBuilder<OperationEntity> builder)
    {
        builder.ToTable("operations", t =>
        {
            t.HasCheckConstraint("ck_operations_state", "state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')");
            t.HasCheckConstraint("ck_operations_progress", "progress BETWEEN 0 AND 100");
        });
        builder.HasKey(o => o.Id).HasName("pk_operations");
        builder.Property(o => o.Id).HasColumnName("id").HasColumnType("uuid").ValueGeneratedNever();
        builder.Property(o => o.ProjectId).HasColumnName("project_id").HasColumnType("text");
        builder.Property(o => o.Kind).HasColumnName("kind").HasColumnType("text");
        builder.Property(o => o.TargetId).HasColumnName("target_id").HasColumnType("text");
        builder.Property(o => o.State).HasColumnName("state").HasColumnType("text");
        builder.Property(o => o.Progress).HasColumnName("progress").HasColumnType("integer");
        builder.Property(o => o.ErrorCode).HasColumnName("error_code").HasColumnType("text");
        builder.Property(o => o.ErrorMessage).HasColumnName("error_message").HasColumnType("text");
        builder.Property(o => o.IdempotencyKey).HasColumnName("idempotency_key").HasColumnType("text");
        builder.Property(o => o.RequestHash).HasColumnName("request_hash").HasColumnType("text");
        builder.Property(o => o.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
        builder.Property(o => o.UpdatedAt).HasColumnName("updated_at").HasColumnType("timestamp with time zone");
        builder.Property(o => o.Owner).HasColumnName("owner").HasColumnType("text");
        builder.Property(o => o.LeaseExpiresAt).HasColumnName("lease_expires_at").HasColumnType("timestamp with time zone");
        builder.Property(o => o.Recovery).HasColumnName("recovery").HasColumnType("text");
        builder.Property(o => o.Request).HasColumnName("request").HasColumnType("text");
        builder.Property(o => o.Result).HasColumnName("result").HasColumnType("text");
        builder.Property(o => o.TraceParent).HasColumnName("trace_parent").HasColumnType("text");
        builder.HasIndex(o => new { o.ProjectId, o.IdempotencyKey }).IsUnique()
            .HasFilter("idempotency_key IS NOT NULL").HasDatabaseName("ux_operations_project_id_idempotency_key");
        // The sweep that resumes abandoned operations looks for unfinished ones; finished
        // operations are the vast majority and stay out of the index.
        // One mutating operation at a time per resource: the check looks up its unfinished ones.
        builder.HasIndex(o => o.TargetId).HasFilter("state IN ('PENDING', 'RUNNING')").HasDatabaseName("ix_operations_target_id_unfinished");
        builder.HasIndex(o => o.State).HasFilter("state IN ('PENDING', 'RUNNING')").HasDatabaseName("ix_operations_state");
    }
}
