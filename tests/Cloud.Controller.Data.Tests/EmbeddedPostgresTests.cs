using System.Diagnostics;
using Cloud.Controller.Data.Embedded;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Cloud.Controller.Data.Tests;

/// <summary>The development server: initialized once, restarted on the same folder, never left behind.</summary>
public sealed class EmbeddedPostgresTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"cloud-embedded-test-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task StartAsync_SameFolderAfterStop_KeepsTheDataAndTheCloudDatabase()
    {
        await using (var first = await EmbeddedPostgres.StartAsync(_directory, NullLogger.Instance, CancellationToken.None))
        {
            Assert.Equal("cloud", new NpgsqlConnectionStringBuilder(first.ConnectionString).Database);
            await ExecuteAsync(first.ConnectionString, "CREATE TABLE kept (value text); INSERT INTO kept VALUES ('still here')");
            await first.StopAsync(CancellationToken.None);
        }

        await using var second = await EmbeddedPostgres.StartAsync(_directory, NullLogger.Instance, CancellationToken.None);

        Assert.Equal("still here", await ScalarAsync(second.ConnectionString, "SELECT value FROM kept"));
        Assert.Equal("127.0.0.1", await ScalarAsync(second.ConnectionString, "SELECT current_setting('listen_addresses')"));
        // The password is required: the server is not open to every local user.
        var anonymous = new NpgsqlConnectionStringBuilder(second.ConnectionString) { Password = "wrong", Pooling = false }.ConnectionString;
        var refused = await Assert.ThrowsAsync<PostgresException>(() => ScalarAsync(anonymous, "SELECT 1"));
        Assert.Equal(PostgresErrorCodes.InvalidPassword, refused.SqlState);
    }

    [Fact]
    public async Task StartAsync_ExtraSettings_ReachTheServerAndAShortListStartsWithout()
    {
        var options = new EmbeddedPostgresOptions
        {
            DataDirectory = _directory, Database = null, Durable = false,
            ExtraSettings = ["work_mem = '7MB'", "shared_preload_libraries = 'pg_stat_statements'"],
        };
        await using (var server = await EmbeddedPostgres.StartAsync(options, NullLogger.Instance, CancellationToken.None))
        {
            Assert.Equal("7MB", await ScalarAsync(server.ConnectionString, "SHOW work_mem"));
            Assert.Equal("pg_stat_statements", await ScalarAsync(server.ConnectionString, "SHOW shared_preload_libraries"));
            await server.StopAsync(CancellationToken.None);
        }

        // The settings file is rewritten at every start: the next start without them has none.
        await using var plain = await EmbeddedPostgres.StartAsync(
            new EmbeddedPostgresOptions { DataDirectory = _directory, Database = null, Durable = false }, NullLogger.Instance, CancellationToken.None);
        Assert.Equal("4MB", await ScalarAsync(plain.ConnectionString, "SHOW work_mem"));
    }

    [Fact]
    public async Task Watchdog_OwnerKilled_StopsTheServerAndDeletesItsFolder()
    {
        using var owner = Process.Start(new ProcessStartInfo("sleep", "300") { UseShellExecute = false })!;
        var server = await EmbeddedPostgres.StartAsync(
            new EmbeddedPostgresOptions { DataDirectory = _directory, Database = null, Durable = false, DeleteOnStop = true, WatchProcessId = owner.Id },
            NullLogger.Instance,
            CancellationToken.None);
        var connectionString = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Pooling = false, Timeout = 3 }.ConnectionString;
        Assert.Equal("1", await ScalarAsync(connectionString, "SELECT 1"));

        owner.Kill();
        await owner.WaitForExitAsync();

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (Directory.Exists(_directory) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }
        Assert.False(Directory.Exists(_directory), "the watchdog did not remove the cluster");
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => ScalarAsync(connectionString, "SELECT 1"));
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var command = dataSource.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<string?> ScalarAsync(string connectionString, string sql)
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var command = dataSource.CreateCommand(sql);
        return Convert.ToString(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
