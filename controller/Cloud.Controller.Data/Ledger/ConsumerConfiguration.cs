using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

internal sealed class ConsumerConfiguration : IEntityTypeConfiguration<ConsumerEntity>
{
    public void Configure(EntityTypeBuilder<ConsumerEntity> builder)
    {
        builder.ToTable("consumers", t =>
        {
            t.HasCheckConstraint("ck_consumers_kind", "kind IN ('vm', 'migration')");
            t.HasCheckConstraint("ck_consumers_generation", "generation >= 0");
        });
        builder.HasKey(c => c.Id).HasName("pk_consumers");
        builder.Property(c => c.Id).HasColumnName("id").HasColumnType("uuid").ValueGeneratedNever();
        builder.Property(c => c.Kind).HasColumnName("kind").HasColumnType("text");
        builder.Property(c => c.ProjectId).HasColumnName("project_id").HasColumnType("text");
        builder.Property(c => c.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");
        builder.Property(c => c.Generation).HasColumnName("generation").HasColumnType("bigint");
    }
}
