using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Cloud.Controller.Data;

/// <summary>Registration of the data layer.</summary>
internal static class LedgerDatabaseExtensions
{
    /// <summary>
    /// Registers one <see cref="NpgsqlDataSource"/> (a singleton: it owns the connection pool;
    /// Npgsql's own tracing stays on, so its spans nest under the ledger's), a pooled
    /// <see cref="IDbContextFactory{LedgerDbContext}"/> over that data source, and the
    /// <see cref="CapacityLedger"/>.
    /// </summary>
    public static IServiceCollection AddLedgerDatabase(this IServiceCollection services, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        try
        {
            _ = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"The ledger's connection string is not valid: {e.Message}", nameof(connectionString), e);
        }

        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(provider =>
        {
            var builder = new NpgsqlDataSourceBuilder(connectionString) { Name = "ledger" };
            // The ledger sends the same few statements all the time (claims take their rows as
            // arrays, so their text never changes): prepared once per connection, they are not
            // parsed and planned again for every claim. A connection string that sets it wins.
            if (!Sets(connectionString, "MaxAutoPrepare"))
            {
                builder.ConnectionStringBuilder.MaxAutoPrepare = 64;
                builder.ConnectionStringBuilder.AutoPrepareMinUsages = 2;
            }
            // Nothing here leaves state on a connection (no SET outside a function, no temporary
            // table, advisory lock or LISTEN), so the reset Npgsql otherwise sends as a
            // connection goes back to the pool only costs: 0.1 ms of the server's time per
            // claim, about a tenth of it. A connection string that sets it wins.
            if (!Sets(connectionString, "NoResetOnClose"))
            {
                builder.ConnectionStringBuilder.NoResetOnClose = true;
            }
            if (provider.GetService<ILoggerFactory>() is { } loggers)
            {
                builder.UseLoggerFactory(loggers);
            }
            return builder.Build();
        });
        services.AddPooledDbContextFactory<LedgerDbContext>(
            (provider, options) => LedgerDbContext.Configure(options, provider.GetRequiredService<NpgsqlDataSource>()));
        services.TryAddSingleton<CapacityLedger>();
        return services;
    }

    private static bool Sets(string connectionString, string keyWithoutSpaces)
    {
        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString };
        return given.Keys.Cast<string>().Any(key => key.Replace(" ", "", StringComparison.Ordinal).Equals(keyWithoutSpaces, StringComparison.OrdinalIgnoreCase));
    }
}
