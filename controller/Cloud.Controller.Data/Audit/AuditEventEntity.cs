using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

/// <summary>
/// One mutating call to the controller, refused ones included: who made it, for which tenant,
/// what it asked, from where and how it ended. Never the request's body, never a secret.
/// </summary>
internal sealed class AuditEventEntity
{
    /// <summary>A version 7 UUID made from <see cref="Time"/>, so that ordering by id is ordering by time.</summary>
    public Guid Id { get; set; }

    /// <summary>When the call arrived.</summary>
    public DateTimeOffset Time { get; set; }

    /// <summary>Who called, as the controller names callers: "token:&lt;id&gt;", "operator" (a configured token), "node" or "anonymous".</summary>
    public string Actor { get; set; } = "";

    /// <summary>The name of the issued token the caller presented; null for the others.</summary>
    public string? ActorName { get; set; }

    /// <summary>operator, member, reader or node; null for an anonymous caller.</summary>
    public string? Role { get; set; }

    /// <summary>The tenant the caller acts in; null for operators, nodes and anonymous callers.</summary>
    public string? TenantId { get; set; }

    /// <summary>REST: the method and route template ("POST /v1/vms/{id}/snapshots"); gRPC: the full method name.</summary>
    public string Action { get; set; } = "";

    /// <summary>The resource the call names (the route's first parameter, or the gRPC request's id), when it names one.</summary>
    public string? TargetId { get; set; }

    /// <summary>The connection's peer address.</summary>
    public IPAddress? SourceAddress { get; set; }

    /// <summary>The HTTP status of the answer; for a gRPC call, the one its status stands for (as REST answers it).</summary>
    public int Status { get; set; }

    /// <summary>The gRPC status code of a gRPC call; null for REST.</summary>
    public int? GrpcStatus { get; set; }

    /// <summary>The W3C trace id of the request, to find its spans and logs.</summary>
    public string? TraceId { get; set; }
}

internal sealed class AuditEventConfiguration : IEntityTypeConfiguration<AuditEventEntity>
{
    public void Configure(EntityTypeBuilder<AuditEventEntity> builder)
    {
        builder.ToTable("audit_events");
        builder.HasKey(e => e.Id).HasName("pk_audit_events");
        builder.Property(e => e.Id).HasColumnName("id").HasColumnType("uuid").ValueGeneratedNever();
        builder.Property(e => e.Time).HasColumnName("time").HasColumnType("timestamp with time zone");
        builder.Property(e => e.Actor).HasColumnName("actor").HasColumnType("text");
        builder.Property(e => e.ActorName).HasColumnName("actor_name").HasColumnType("text");
        builder.Property(e => e.Role).HasColumnName("role").HasColumnType("text");
        builder.Property(e => e.TenantId).HasColumnName("tenant_id").HasColumnType("text");
        builder.Property(e => e.Action).HasColumnName("action").HasColumnType("text");
        builder.Property(e => e.TargetId).HasColumnName("target_id").HasColumnType("text");
        builder.Property(e => e.SourceAddress).HasColumnName("source_address").HasColumnType("inet");
        builder.Property(e => e.Status).HasColumnName("status").HasColumnType("integer");
        builder.Property(e => e.GrpcStatus).HasColumnName("grpc_status").HasColumnType("integer");
        builder.Property(e => e.TraceId).HasColumnName("trace_id").HasColumnType("text");
        // A tenant's reads: its events, newest first. An operator's read newest first is the primary key's.
        builder.HasIndex(e => new { e.TenantId, e.Id }).HasDatabaseName("ix_audit_events_tenant_id_id");
        // Retention deletes by age, and since/until filter by it.
        builder.HasIndex(e => e.Time).HasDatabaseName("ix_audit_events_time");
    }
}
