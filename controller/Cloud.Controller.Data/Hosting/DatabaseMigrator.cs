using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Cloud.Controller.Data;

/// <summary>
/// The explicit migration step: the controller's <c>migrate</c> command, and the start of a
/// development controller. Safe to run again, and from several replicas at once (EF takes a
/// lock on the history table while it migrates).
/// </summary>
internal static class DatabaseMigrator
{
    public static async Task MigrateAsync(string connectionString, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var db = CreateContext(dataSource);
        await db.Database.MigrateAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A context outside dependency injection, for the migrator and the tests.</summary>
    internal static LedgerDbContext CreateContext(NpgsqlDataSource dataSource)
    {
        var options = new DbContextOptionsBuilder<LedgerDbContext>();
        LedgerDbContext.Configure(options, dataSource);
        return new LedgerDbContext(options.Options);
    }
}
