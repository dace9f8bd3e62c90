using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;

namespace Cloud.Controller.Data;

/// <summary>
/// The controller's database: the capacity ledger (nodes, inventories, consumers, allocations),
/// the catalog (flavors, images), VMs and operations. The claim path does not go through EF;
/// see <see cref="CapacityLedger"/>.
/// </summary>
internal sealed class LedgerDbContext(DbContextOptions<LedgerDbContext> options) : DbContext(options)
{
    public const string MigrationsHistoryTable = "__EFMigrationsHistory";

    public DbSet<NodeEntity> Nodes => Set<NodeEntity>();

    public DbSet<InventoryEntity> Inventories => Set<InventoryEntity>();

    public DbSet<ConsumerEntity> Consumers => Set<ConsumerEntity>();

    public DbSet<AllocationEntity> Allocations => Set<AllocationEntity>();

    public DbSet<FlavorEntity> Flavors => Set<FlavorEntity>();

    public DbSet<ImageEntity> Images => Set<ImageEntity>();

    public DbSet<ImageMemberEntity> ImageMembers => Set<ImageMemberEntity>();

    public DbSet<ImageCopyEntity> ImageCopies => Set<ImageCopyEntity>();

    public DbSet<VmEntity> Vms => Set<VmEntity>();

    public DbSet<OperationEntity> Operations => Set<OperationEntity>();

    public DbSet<TenantEntity> Tenants => Set<TenantEntity>();

    public DbSet<ApiTokenEntity> ApiTokens => Set<ApiTokenEntity>();

    public DbSet<SnapshotEntity> Snapshots => Set<SnapshotEntity>();

    public DbSet<FlavorAccessEntity> FlavorAccess => Set<FlavorAccessEntity>();

    public DbSet<IdempotencyRecordEntity> IdempotencyRecords => Set<IdempotencyRecordEntity>();

    public DbSet<AuditEventEntity> AuditEvents => Set<AuditEventEntity>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
        => modelBuilder.ApplyConfigurationsFromAssembly(typeof(LedgerDbContext).Assembly);

    /// <summary>
    /// The one place the context's options are set, shared by the application's factory, the
    /// migrator and the tests, so that all of them see the same model and behavior.
    /// </summary>
    public static DbContextOptionsBuilder Configure(DbContextOptionsBuilder builder, NpgsqlDataSource dataSource)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(dataSource);
        return builder
            .UseNpgsql(dataSource, npgsql => npgsql.MigrationsHistoryTable(MigrationsHistoryTable))
            // Migrations are written by hand and there is no model snapshot to compare with, so
            // EF would always report pending model changes. A test proves instead that the
            // migrated schema equals the one made from the model (docs/design/002).
            .ConfigureWarnings(w => w.Ignore(RelationalEventId.PendingModelChangesWarning));
    }
}
