using System.Text.RegularExpressions;
using Cloud.Controller.Data;
using Cloud.Controller.Data.Embedded;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Xunit;

namespace Cloud.Testing;

/// <summary>
/// A real PostgreSQL for tests: one throwaway cluster per test process, started on first use
/// in a temporary folder, and a fresh database for every test or test class that asks.
/// </summary>
/// <remarks>
/// Use <see cref="Shared"/> from anywhere, or take the fixture as a class or collection fixture;
/// every instance uses the same cluster. The cluster stops and its folder is deleted when the
/// test process exits; if the process is killed instead, a watchdog started with the cluster
/// does the same within a second, so no server outlives a test run.
/// </remarks>
public sealed partial class PostgresFixture : IAsyncLifetime
{
    private static readonly Lazy<Task<EmbeddedPostgres>> Cluster = new(StartClusterAsync, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly SemaphoreSlim TemplateGate = new(1, 1);
    private static string? _migratedTemplate;

    /// <summary>The process-wide fixture.</summary>
    public static PostgresFixture Shared { get; } = new();

    /// <summary>Starts the cluster (once per process).</summary>
    public Task InitializeAsync() => Cluster.Value;

    /// <summary>
    /// Nothing: the cluster serves every test of the process and stops when the process exits.
    /// </summary>
    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>A connection string to the cluster's maintenance database, as its superuser.</summary>
    public async Task<string> GetAdminConnectionStringAsync()
    {
        var cluster = await Cluster.Value.ConfigureAwait(false);
        return cluster.ConnectionString;
    }

    /// <summary>Creates an empty database of its own for the caller and returns its connection string.</summary>
    public Task<string> CreateDatabaseAsync(CancellationToken cancellationToken = default)
        => CreateDatabaseAsync(template: null, cancellationToken);

    /// <summary>
    /// Creates a database holding the controller's schema (every migration applied) and returns
    /// its connection string. Copies a template migrated once per process, which is several
    /// times faster than migrating every database.
    /// </summary>
    public async Task<string> CreateMigratedDatabaseAsync(CancellationToken cancellationToken = default)
    {
        var template = _migratedTemplate;
        if (template is null)
        {
            await TemplateGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (_migratedTemplate is null)
                {
                    var connectionString = await CreateDatabaseAsync(cancellationToken).ConfigureAwait(false);
                    // The migrator's own data source closes its connections when it is done,
                    // and a template must have none while it is copied.
                    await DatabaseMigrator.MigrateAsync(connectionString, cancellationToken).ConfigureAwait(false);
                    _migratedTemplate = new NpgsqlConnectionStringBuilder(connectionString).Database;
                }
                template = _migratedTemplate;
            }
            finally
            {
                TemplateGate.Release();
            }
        }
        return await CreateDatabaseAsync(template, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<string> CreateDatabaseAsync(string? template, CancellationToken cancellationToken)
    {
        var cluster = await Cluster.Value.ConfigureAwait(false);
        var name = $"test_{Guid.NewGuid():N}";
        if (template is not null && !Identifier().IsMatch(template))
        {
            throw new ArgumentException($"'{template}' is not a plain database name.", nameof(template));
        }
        await using (var connection = new NpgsqlConnection(cluster.ConnectionString))
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            var sql = template is null ? $"CREATE DATABASE {name}" : $"CREATE DATABASE {name} TEMPLATE {template}";
            await using var command = new NpgsqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        return new NpgsqlConnectionStringBuilder(cluster.ConnectionString) { Database = name, IncludeErrorDetail = true }.ConnectionString;
    }

    private static async Task<EmbeddedPostgres> StartClusterAsync()
    {
        var directory = Path.Combine(Path.GetTempPath(), $"cloud-pg-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        var cluster = await EmbeddedPostgres.StartAsync(
            new EmbeddedPostgresOptions
            {
                DataDirectory = directory,
                Database = null,
                Durable = false,
                DeleteOnStop = true,
                WatchProcessId = Environment.ProcessId,
                MaxConnections = 300,
            },
            NullLogger.Instance,
            CancellationToken.None).ConfigureAwait(false);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            NpgsqlConnection.ClearAllPools();
            cluster.Stop();
        };
        return cluster;
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex Identifier();
}
