using Cloud.Controller.Data;
using Cloud.Controller.Data.Embedded;

namespace Cloud.Controller.Hosting;

/// <summary>
/// Finds the ledger's database: the configured connection string, or else a private PostgreSQL
/// cluster started for this process and stopped with it (the embedded default for development).
/// </summary>
internal sealed class DatabaseStartup : IAsyncDisposable
{
    private EmbeddedPostgres? _embedded;

    public string ConnectionString { get; private set; } = "";

    public static async Task<DatabaseStartup> PrepareAsync(IConfiguration configuration, ILogger logger, CancellationToken cancellationToken)
    {
        var startup = new DatabaseStartup();
        var options = configuration.GetSection(ControllerOptions.SectionName).Get<ControllerOptions>() ?? new ControllerOptions();
        var configured = configuration.GetConnectionString("Ledger");
        if (string.IsNullOrWhiteSpace(configured))
        {
            startup._embedded = await EmbeddedPostgres.StartAsync(Path.GetFullPath(options.EmbeddedDatabaseDirectory), logger, cancellationToken);
            startup.ConnectionString = startup._embedded.ConnectionString;
            await DatabaseMigrator.MigrateAsync(startup.ConnectionString, cancellationToken);
        }
        else
        {
            startup.ConnectionString = configured;
            if (options.MigrateOnStart)
            {
                await DatabaseMigrator.MigrateAsync(configured, cancellationToken);
            }
        }
        return startup;
    }

    public async ValueTask DisposeAsync()
    {
        if (_embedded is not null)
        {
            await _embedded.DisposeAsync();
        }
    }
}
