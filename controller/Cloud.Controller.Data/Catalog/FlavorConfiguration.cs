using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

internal sealed class FlavorConfiguration : IEntityTypeConfiguration<FlavorEntity>
{
    /// <summary>When the standard flavors were defined; a constant so that the seed never changes.</summary>
    internal static readonly DateTimeOffset SeededAt = new(2026, 11, 22, 0, 0, 0, TimeSpan.Zero);

    public void Configure(EntityTypeBuilder<FlavorEntity> builder)
    {
        builder.ToTable("flavors", t =>
        {
            t.HasCheckConstraint("ck_flavors_vcpus", "vcpus > 0");
            t.HasCheckConstraint("ck_flavors_memory_mb", "memory_mb > 0");
            t.HasCheckConstraint("ck_flavors_disk_gb", "disk_gb >= 0");
        });
        builder.HasKey(f => f.Name).HasName("pk_flavors");
        builder.Property(f => f.Name).HasColumnName("name").HasColumnType("text");
        builder.Property(f => f.Vcpus).HasColumnName("vcpus").HasColumnType("integer");
        builder.Property(f => f.MemoryMb).HasColumnName("memory_mb").HasColumnType("bigint");
        builder.Property(f => f.DiskGb).HasColumnName("disk_gb").HasColumnType("bigint");
        builder.Property(f => f.IsPublic).HasColumnName("is_public").HasColumnType("boolean");
        builder.Property(f => f.CreatedAt).HasColumnName("created_at").HasColumnType("timestamp with time zone");

        // Also inserted by the Initial migration; declared here so that a database made from
        // the model (EnsureCreated, used to check the migrations) holds the same rows.
        builder.HasData(
            Standard("m1.tiny", 1, 512, 1),
            Standard("m1.small", 1, 2048, 20),
            Standard("m1.medium", 2, 4096, 40),
            Standard("m1.large", 4, 8192, 80),
            Standard("m1.xlarge", 8, 16384, 160));
    }

    private static FlavorEntity Standard(string name, int vcpus, long memoryMb, long diskGb) => new()
    {
        Name = name,
        Vcpus = vcpus,
        MemoryMb = memoryMb,
        DiskGb = diskGb,
        IsPublic = true,
        CreatedAt = SeededAt,
    };
}
