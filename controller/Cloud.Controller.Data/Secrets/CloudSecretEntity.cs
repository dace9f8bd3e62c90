using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Cloud.Controller.Data;

/// <summary>
/// A secret of the whole cloud, made once and shared by every controller replica through the
/// database (such as the key of tenants' host ids). Never shown through the API.
/// </summary>
internal sealed class CloudSecretEntity
{
    public string Name { get; set; } = "";

    public byte[] Value { get; set; } = [];
}

internal sealed class CloudSecretConfiguration : IEntityTypeConfiguration<CloudSecretEntity>
{
    public void Configure(EntityTypeBuilder<CloudSecretEntity> builder)
    {
        builder.ToTable("cloud_secrets");
        builder.HasKey(s => s.Name).HasName("pk_cloud_secrets");
        builder.Property(s => s.Name).HasColumnName("name").HasColumnType("text");
        builder.Property(s => s.Value).HasColumnName("value").HasColumnType("bytea");
    }
}

/// <summary>Reads a cloud secret, making it first when no replica has yet.</summary>
internal static class CloudSecrets
{
    /// <summary>
    /// The secret named <paramref name="name"/>; when there is none, <paramref name="create"/>'s
    /// value is stored, unless another replica stored one meanwhile, whose value then wins.
    /// </summary>
    public static async Task<byte[]> GetOrCreateAsync(LedgerDbContext db, string name, Func<byte[]> create, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(db);
        ArgumentNullException.ThrowIfNull(create);
        var value = create();
        await db.Database.ExecuteSqlAsync($"INSERT INTO cloud_secrets (name, value) VALUES ({name}, {value}) ON CONFLICT (name) DO NOTHING", cancellationToken);
        return await db.Set<CloudSecretEntity>().AsNoTracking().Where(s => s.Name == name).Select(s => s.Value).SingleAsync(cancellationToken);
    }
}
