using Cloud.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Cloud.Controller.Data.Tests;

public sealed class ServiceRegistrationTests
{
    [Fact]
    public async Task AddLedgerDatabase_Resolved_SharesOneDataSourceBetweenEfAndTheLedger()
    {
        var connectionString = await PostgresFixture.Shared.CreateMigratedDatabaseAsync();
        var services = new ServiceCollection().AddLogging().AddLedgerDatabase(connectionString);
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });

        var dataSource = provider.GetRequiredService<NpgsqlDataSource>();
        var contexts = provider.GetRequiredService<IDbContextFactory<LedgerDbContext>>();
        var ledger = provider.GetRequiredService<CapacityLedger>();
        await using (var db = await contexts.CreateDbContextAsync())
        {
            Assert.Equal(5, await db.Flavors.CountAsync());
            Assert.Equal(dataSource.ConnectionString, db.Database.GetDbConnection().ConnectionString);
        }
        var node = await ledger.UpsertNodeAsync(Support.LedgerDatabase.Registration("n1", new Dictionary<string, ResourceInventory> { ["VCPU"] = new(4, 0, 1, 1, 4, 1) }), CancellationToken.None);

        Assert.Same(ledger, provider.GetRequiredService<CapacityLedger>());
        Assert.Equal([node], (await ledger.LoadAsync(CancellationToken.None)).Select(n => n.NodeId));
    }

    [Theory]
    [InlineData("Host=127.0.0.1;Database=cloud", 64)]
    [InlineData("Host=127.0.0.1;Database=cloud;Max Auto Prepare=0", 0)]
    [InlineData("Host=127.0.0.1;Database=cloud;maxautoprepare=5", 5)]
    public async Task AddLedgerDatabase_PreparesTheLedgersStatementsUnlessTheConnectionStringSaysOtherwise(string connectionString, int expected)
    {
        await using var provider = new ServiceCollection().AddLogging().AddLedgerDatabase(connectionString).BuildServiceProvider();

        var dataSource = provider.GetRequiredService<NpgsqlDataSource>();

        Assert.Equal(expected, new NpgsqlConnectionStringBuilder(dataSource.ConnectionString).MaxAutoPrepare);
    }

    [Theory]
    [InlineData("Host=127.0.0.1;Database=cloud", true)]
    [InlineData("Host=127.0.0.1;Database=cloud;No Reset On Close=false", false)]
    [InlineData("Host=127.0.0.1;Database=cloud;noresetonclose=true", true)]
    public async Task AddLedgerDatabase_SkipsTheResetOnReturnToThePoolUnlessTheConnectionStringSaysOtherwise(string connectionString, bool expected)
    {
        await using var provider = new ServiceCollection().AddLogging().AddLedgerDatabase(connectionString).BuildServiceProvider();

        var dataSource = provider.GetRequiredService<NpgsqlDataSource>();

        Assert.Equal(expected, new NpgsqlConnectionStringBuilder(dataSource.ConnectionString).NoResetOnClose);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Host=127.0.0.1;NoSuchSetting=1")]
    public void AddLedgerDatabase_BadConnectionString_IsRefusedAtRegistration(string connectionString)
        => Assert.ThrowsAny<ArgumentException>(() => new ServiceCollection().AddLedgerDatabase(connectionString));

    [Fact]
    public async Task MigrateAsync_DatabaseThatDoesNotExistYet_CreatesAndMigratesIt()
    {
        var admin = await PostgresFixture.Shared.GetAdminConnectionStringAsync();
        var connectionString = new NpgsqlConnectionStringBuilder(admin) { Database = $"fresh_{Guid.NewGuid():N}" }.ConnectionString;

        await DatabaseMigrator.MigrateAsync(connectionString, CancellationToken.None);

        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var command = dataSource.CreateCommand("SELECT count(*) FROM flavors");
        Assert.Equal(5L, await command.ExecuteScalarAsync());
    }

}
