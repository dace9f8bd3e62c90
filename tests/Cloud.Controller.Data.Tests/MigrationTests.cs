using Cloud.Controller.Data.Tests.Support;
using Cloud.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.EntityFrameworkCore.Migrations.Operations;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;

namespace Cloud.Controller.Data.Tests;

/// <summary>
/// The migrations are written by hand and there is no model snapshot, so these tests are what
/// keeps them honest: the schema they build must be exactly the one the EF model describes.
/// </summary>
public sealed class MigrationTests
{
    [Fact]
    public async Task Migrate_FreshDatabase_SchemaEqualsTheModel()
    {
        var migrated = await PostgresFixture.Shared.CreateDatabaseAsync();
        var created = await PostgresFixture.Shared.CreateDatabaseAsync();
        await DatabaseMigrator.MigrateAsync(migrated, CancellationToken.None);
        await using (var dataSource = NpgsqlDataSource.Create(created))
        await using (var db = DatabaseMigrator.CreateContext(dataSource))
        {
            Assert.True(await db.Database.EnsureCreatedAsync());
        }

        var fromMigrations = await SchemaAsync(migrated);
        var fromModel = await SchemaAsync(created);

        // Guard against comparing two empty schemas: the description must hold the real thing.
        Assert.Contains(fromModel.Columns, c => c.StartsWith("allocations.used bigint", StringComparison.Ordinal));
        Assert.Contains(fromModel.Constraints, c => c.Contains("ck_inventories_total", StringComparison.Ordinal));
        Assert.Contains(fromModel.Indexes, i => i.Contains("ux_operations_project_id_idempotency_key", StringComparison.Ordinal));
        Assert.Equal(fromModel.Columns, fromMigrations.Columns);
        Assert.Equal(fromModel.Constraints, fromMigrations.Constraints);
        Assert.Equal(fromModel.Indexes, fromMigrations.Indexes);
        Assert.Equal(fromModel.Flavors, fromMigrations.Flavors);
    }

    [Fact]
    public async Task Migrate_Twice_ChangesNothingTheSecondTime()
    {
        var connectionString = await PostgresFixture.Shared.CreateDatabaseAsync();
        await DatabaseMigrator.MigrateAsync(connectionString, CancellationToken.None);
        var first = await SchemaAsync(connectionString);

        await DatabaseMigrator.MigrateAsync(connectionString, CancellationToken.None);

        var second = await SchemaAsync(connectionString);
        Assert.Equal(first.Columns, second.Columns);
        Assert.Equal(first.Constraints, second.Constraints);
        Assert.Equal(first.Indexes, second.Indexes);
        Assert.Equal(first.Flavors, second.Flavors);
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var db = DatabaseMigrator.CreateContext(dataSource);
        Assert.Equal(db.Database.GetMigrations(), await db.Database.GetAppliedMigrationsAsync());
        Assert.Contains("2026112200000_Initial", db.Database.GetMigrations());
        Assert.Empty(await db.Database.GetPendingMigrationsAsync());
    }

    [Fact]
    public async Task Migrate_FreshDatabase_SeedsTheStandardFlavors()
    {
        var connectionString = await PostgresFixture.Shared.CreateDatabaseAsync();
        await DatabaseMigrator.MigrateAsync(connectionString, CancellationToken.None);

        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var db = DatabaseMigrator.CreateContext(dataSource);
        var flavors = await db.Flavors.AsNoTracking().OrderBy(f => f.Vcpus).ThenBy(f => f.MemoryMb)
            .Select(f => new { f.Name, f.Vcpus, f.MemoryMb, f.DiskGb, f.IsPublic }).ToListAsync();
        Assert.Equal(
            [
                new { Name = "m1.tiny", Vcpus = 1, MemoryMb = 512L, DiskGb = 1L, IsPublic = true },
                new { Name = "m1.small", Vcpus = 1, MemoryMb = 2048L, DiskGb = 20L, IsPublic = true },
                new { Name = "m1.medium", Vcpus = 2, MemoryMb = 4096L, DiskGb = 40L, IsPublic = true },
                new { Name = "m1.large", Vcpus = 4, MemoryMb = 8192L, DiskGb = 80L, IsPublic = true },
                new { Name = "m1.xlarge", Vcpus = 8, MemoryMb = 16384L, DiskGb = 160L, IsPublic = true },
            ],
            flavors);
    }

    [Fact]
    public async Task LeanDecisions_DownThenUp_KeepsTheDecisionsAndSwapsTheirTypes()
    {
        var connectionString = await PostgresFixture.Shared.CreateDatabaseAsync();
        await DatabaseMigrator.MigrateAsync(connectionString, CancellationToken.None);
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        var id = Guid.NewGuid();
        await using (var insert = dataSource.CreateCommand("""
            INSERT INTO placement_decisions (id, project_id, kind, outcome, nodes_considered, rejections, summary, request, attempts, created_at)
            VALUES ($1, 'p', 'dry-run', 'failed', 2, '{"traits":2}', 's', '{"vcpus":2,"requiredTraits":["GPU"]}', 1, now())
            """))
        {
            insert.Parameters.Add(new NpgsqlParameter { Value = id });
            await insert.ExecuteNonQueryAsync();
        }
        await using var db = DatabaseMigrator.CreateContext(dataSource);
        var migration = new Migrations.LeanDecisions();

        // Run directly rather than through IMigrator: EF finds a migration by name only after
        // a 14-digit id, and these ids have 13.
        await RunAsync(db, migration.DownOperations);
        var down = await DecisionsSchemaAsync(dataSource, id);
        await RunAsync(db, migration.UpOperations);
        var up = await DecisionsSchemaAsync(dataSource, id);

        Assert.Equal(["jsonb", "jsonb"], down.Types);
        Assert.Equal("2|GPU", down.Values);
        Assert.Equal(["json", "json"], up.Types);
        Assert.Equal("2|GPU", up.Values);
    }

    [Fact]
    public async Task ClaimFunction_DownThenUp_TakesTheClaimAwayAndGivesItBack()
    {
        var connectionString = await PostgresFixture.Shared.CreateDatabaseAsync();
        await DatabaseMigrator.MigrateAsync(connectionString, CancellationToken.None);
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var db = DatabaseMigrator.CreateContext(dataSource);
        var migration = new Migrations.ClaimFunction();
        var ghost = Guid.NewGuid();

        await RunAsync(db, migration.DownOperations);
        var gone = await Assert.ThrowsAsync<PostgresException>(() => ClaimOnAsync(dataSource, ghost));
        await RunAsync(db, migration.UpOperations);
        var back = await Assert.ThrowsAsync<PostgresException>(() => ClaimOnAsync(dataSource, ghost));

        Assert.Equal(PostgresErrorCodes.UndefinedFunction, gone.SqlState);
        Assert.Equal(LedgerSql.RefusedState, back.SqlState);
        Assert.Equal($"{LedgerSql.RefusedPrefix}NodeMissing {ghost}", back.MessageText);
    }

    [Fact]
    public async Task NodeChangeNotifications_DownThenUp_TakesTheTriggersAwayAndGivesThemBack()
    {
        var connectionString = await PostgresFixture.Shared.CreateDatabaseAsync();
        await DatabaseMigrator.MigrateAsync(connectionString, CancellationToken.None);
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var db = DatabaseMigrator.CreateContext(dataSource);
        var migration = new Migrations.NodeChangeNotifications();
        const string Triggers = "SELECT tgname::text FROM pg_trigger WHERE tgfoid = 'notify_nodes_changed'::regproc ORDER BY tgname";

        var migrated = await ListAsync(dataSource, Triggers);
        await RunAsync(db, migration.DownOperations);
        var down = await ListAsync(dataSource, "SELECT proname::text FROM pg_proc WHERE proname IN ('notify_nodes_changed', 'bump_aggregate_member')");
        await RunAsync(db, migration.UpOperations);

        Assert.Equal(["aggregate_members_changed", "nodes_added_or_removed", "nodes_state_changed"], migrated);
        Assert.Empty(down);
        Assert.Equal(migrated, await ListAsync(dataSource, Triggers));
    }

    [Fact]
    public async Task TenantImageQuota_DownThenUp_CountsTheImagesEachTenantAlreadyOwns()
    {
        var connectionString = await PostgresFixture.Shared.CreateDatabaseAsync();
        await DatabaseMigrator.MigrateAsync(connectionString, CancellationToken.None);
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var db = DatabaseMigrator.CreateContext(dataSource);
        var migration = new Migrations.TenantImageQuota();
        await RunAsync(db, migration.DownOperations);
        await using (var seed = dataSource.CreateCommand("""
            INSERT INTO tenants (id, display_name, created_at, max_instances, max_vcpus, max_memory_mb, max_disk_gb, max_snapshots,
                                 used_instances, used_vcpus, used_memory_mb, used_disk_gb, used_snapshots)
            VALUES ('owner', 'Owner', now(), 1, 1, 1, 1, 1, 0, 0, 0, 0, 0), ('empty', 'Empty', now(), 1, 1, 1, 1, 1, 0, 0, 0, 0, 0);
            INSERT INTO images (id, name, format, sha256, size_bytes, created_at, project_id, visibility, state, stored) VALUES
                ('img-big', 'big', 'raw', '', 1610612736, now(), 'owner', 'private', 'ACTIVE', true),
                ('img-tiny', 'tiny', 'raw', '', 1, now(), 'owner', 'private', 'ACTIVE', true),
                ('img-queued', 'queued', 'raw', '', 0, now(), 'owner', 'private', 'QUEUED', false),
                ('img-gone', 'gone', 'raw', '', 1073741824, now(), 'owner', 'private', 'DELETED', false);
            """))
        {
            await seed.ExecuteNonQueryAsync();
        }

        await RunAsync(db, migration.UpOperations);

        // 1.5 GiB counts 2, one byte counts 1; the queued image counts as an image with no file.
        Assert.Equal(
            ["empty 0 0 50 100", "owner 3 3 50 100"],
            await ListAsync(dataSource, "SELECT id || ' ' || used_images || ' ' || used_image_gb || ' ' || max_images || ' ' || max_image_gb FROM tenants ORDER BY id"));
    }

    [Fact]
    public async Task SnapshotLedger_DownThenUp_PutsLiveSnapshotsOnTheirVmsNodeAndAllowsLost()
    {
        await using var ledger = await LedgerDatabase.CreateAsync();
        var node = await ledger.AddNodeAsync("n1");
        var placed = Guid.NewGuid();
        var unplaced = Guid.NewGuid();
        await ledger.InsertVmAsync(placed, node, "RUNNING");
        await ledger.InsertVmAsync(unplaced, null, "ERROR");
        await using var db = DatabaseMigrator.CreateContext(ledger.DataSource);
        var migration = new Migrations.SnapshotLedger();
        await RunAsync(db, migration.DownOperations);
        await ledger.ExecuteAsync("""
            INSERT INTO snapshots (id, project_id, vm_id, name, state, includes_memory, size_bytes, error, created_at, updated_at) VALUES
                ('00000000-0000-0000-0000-000000000001', 'p', $1, 'ready', 'READY', false, 0, NULL, now(), now()),
                ('00000000-0000-0000-0000-000000000002', 'p', $1, 'gone', 'DELETED', false, 0, NULL, now(), now()),
                ('00000000-0000-0000-0000-000000000003', 'p', $2, 'orphan', 'READY', false, 0, NULL, now(), now())
            """, placed, unplaced);

        await RunAsync(db, migration.UpOperations);

        Assert.Equal([$"ready {node}", "gone NULL", "orphan NULL"], await ListAsync(ledger.DataSource,
            "SELECT name || ' ' || coalesce(node_id::text, 'NULL') FROM snapshots ORDER BY id"));
        Assert.Equal(1, await ledger.ExecuteAsync("UPDATE snapshots SET state = 'LOST', error = 'x' WHERE name = 'ready'"));
        var refused = await Assert.ThrowsAsync<PostgresException>(() => ledger.ExecuteAsync("UPDATE snapshots SET state = 'MISSING' WHERE name = 'ready'"));
        Assert.Equal("ck_snapshots_state", refused.ConstraintName);
    }

    /// <summary>A one-VM claim on <paramref name="node"/>, as the ledger sends it.</summary>
    private static async Task ClaimOnAsync(NpgsqlDataSource dataSource, Guid node)
    {
        var consumer = Guid.NewGuid();
        await using var command = dataSource.CreateCommand(LedgerSql.Claim);
        foreach (var value in new object[]
        {
            new[] { node }, new[] { -1L }, new[] { consumer }, new[] { "vm" }, new[] { "p" }, DateTimeOffset.UtcNow,
            new[] { consumer }, new[] { node }, new[] { "VCPU" }, new[] { 1L },
        })
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }
        await command.ExecuteNonQueryAsync();
    }

    private static async Task RunAsync(LedgerDbContext db, IReadOnlyList<MigrationOperation> operations)
    {
        var commands = db.GetService<IMigrationsSqlGenerator>().Generate(operations, db.Model);
        await db.GetService<IMigrationCommandExecutor>().ExecuteNonQueryAsync(commands, db.GetService<IRelationalConnection>());
    }

    private static async Task<(List<string> Types, string Values)> DecisionsSchemaAsync(NpgsqlDataSource dataSource, Guid id)
    {
        var types = await ListAsync(dataSource, """
            SELECT udt_name FROM information_schema.columns
             WHERE table_name = 'placement_decisions' AND column_name IN ('rejections', 'request') ORDER BY column_name
            """);
        await using var command = dataSource.CreateCommand("SELECT (rejections->>'traits') || '|' || (request->'requiredTraits'->>0) FROM placement_decisions WHERE id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        return (types, (string)(await command.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task VmVersion_RowChangedBySqlSinceRead_EfUpdateIsRefused()
    {
        await using var database = await LedgerDatabase.CreateAsync();
        var id = Guid.NewGuid();
        await using (var db = DatabaseMigrator.CreateContext(database.DataSource))
        {
            db.Vms.Add(new VmEntity
            {
                Id = id, ProjectId = "p", Name = "web-1", FlavorName = "m1.tiny", State = "PENDING", Vcpus = 1, MemoryMb = 512, DiskGb = 1,
                Labels = new Dictionary<string, string> { ["tier"] = "web", ["owner"] = "ops" },
                CreatedAt = database.Time.GetUtcNow(), UpdatedAt = database.Time.GetUtcNow(),
            });
            await db.SaveChangesAsync();
        }

        await using var stale = DatabaseMigrator.CreateContext(database.DataSource);
        var vm = await stale.Vms.SingleAsync(v => v.Id == id);
        Assert.Equal("web", vm.Labels["tier"]);
        Assert.Equal("ops", vm.Labels["owner"]);
        // The claim path writes with plain SQL; xmin still moves, so EF notices.
        await database.ExecuteAsync("UPDATE vms SET state = 'CREATING' WHERE id = $1", id);
        vm.State = "DELETING";

        await Assert.ThrowsAsync<DbUpdateConcurrencyException>(() => stale.SaveChangesAsync());
        Assert.Equal("CREATING", await database.ScalarAsync<string>("SELECT state FROM vms WHERE id = $1", id));
    }

    private sealed record Schema(List<string> Columns, List<string> Constraints, List<string> Indexes, List<string> Flavors);

    private static async Task<Schema> SchemaAsync(string connectionString)
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        return new Schema(
            await ListAsync(dataSource, """
                SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || udt_name
                       || ' nullable=' || is_nullable || ' default=' || coalesce(column_default, '-')
                       || ' length=' || coalesce(character_maximum_length::text, '-')
                  FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name <> '__EFMigrationsHistory'
                 ORDER BY 1
                """),
            await ListAsync(dataSource, """
                SELECT rel.relname || ' ' || con.conname || ' ' || con.contype::text || ' ' || pg_get_constraintdef(con.oid)
                  FROM pg_constraint AS con
                  JOIN pg_class AS rel ON rel.oid = con.conrelid
                  JOIN pg_namespace AS ns ON ns.oid = rel.relnamespace
                 WHERE ns.nspname = 'public' AND rel.relname <> '__EFMigrationsHistory'
                 ORDER BY 1
                """),
            await ListAsync(dataSource, """
                SELECT tablename || ' ' || indexname || ' ' || indexdef
                  FROM pg_indexes
                 WHERE schemaname = 'public' AND tablename <> '__EFMigrationsHistory'
                 ORDER BY 1
                """),
            await ListAsync(dataSource, """
                SELECT name || ' ' || vcpus || ' ' || memory_mb || ' ' || disk_gb || ' ' || is_public || ' ' || created_at
                  FROM flavors ORDER BY name
                """));
    }

    private static async Task<List<string>> ListAsync(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }
        return rows;
    }
}
