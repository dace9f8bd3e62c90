using Cloud.Controller.Data.Tests.Support;
using Cloud.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql;

namespace Cloud.Controller.Data.Tests;

/// <summary>
/// The running totals in node_usage, which claims check capacity against: the triggers on
/// allocations must keep them equal to the allocations' sums whichever way those change.
/// </summary>
public sealed class NodeUsageTests : IAsyncLifetime
{
    private LedgerDatabase _db = null!;

    public async Task InitializeAsync() => _db = await LedgerDatabase.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    private Task<long> TotalAsync(Guid node, string resourceClass)
        => _db.ScalarAsync<long>("SELECT coalesce((SELECT used FROM node_usage WHERE node_id = $1 AND resource_class = $2), 0)", node, resourceClass);

    private async Task AssertTotalsAsync(Guid node, long vcpus, long memoryMb)
    {
        Assert.Equal(vcpus, await TotalAsync(node, "VCPU"));
        Assert.Equal(memoryMb, await TotalAsync(node, "MEMORY_MB"));
        Assert.Equal(vcpus, await _db.UsedAsync(node, "VCPU"));
        // The consumers have no VM rows (orphans to the checker); only the totals matter here.
        Assert.DoesNotContain(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None), v => v.StartsWith("usage:", StringComparison.Ordinal));
    }

    private async Task ClaimAsync(Guid consumer, Guid node, long vcpus, long memoryMb, string kind = "vm")
        => Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(consumer, node, Claim.AnyGeneration, vcpus, memoryMb, kind)], null, CancellationToken.None)).Succeeded);

    [Fact]
    public async Task Totals_FollowClaimsTopUpsMigrationsAndReleases()
    {
        var source = await _db.AddNodeAsync("n1");
        var target = await _db.AddNodeAsync("n2");
        var (vm, other) = (Guid.NewGuid(), Guid.NewGuid());

        await ClaimAsync(vm, source, 2, 1024);
        await ClaimAsync(other, source, 1, 512);
        await AssertTotalsAsync(source, 3, 1536);

        // A second claim of the same consumer on the same node tops its allocations up (the
        // insert's ON CONFLICT path, an update as far as the triggers go).
        await ClaimAsync(vm, source, 1, 256);
        await AssertTotalsAsync(source, 4, 1792);

        // A migration holds capacity on both nodes, and a revert gives the target's back.
        var migration = Guid.NewGuid();
        Assert.True((await _db.Ledger.BeginMigrationAsync(vm, migration, source, target, await _db.GenerationAsync(target), null, CancellationToken.None)).Succeeded);
        await AssertTotalsAsync(source, 4, 1792);
        await AssertTotalsAsync(target, 3, 1280);
        await _db.Ledger.EndMigrationAsync(vm, migration, confirm: false, null, CancellationToken.None);
        await AssertTotalsAsync(source, 4, 1792);
        await AssertTotalsAsync(target, 0, 0);

        // A confirmed one frees the source.
        migration = Guid.NewGuid();
        Assert.True((await _db.Ledger.BeginMigrationAsync(vm, migration, source, target, await _db.GenerationAsync(target), null, CancellationToken.None)).Succeeded);
        await _db.Ledger.EndMigrationAsync(vm, migration, confirm: true, null, CancellationToken.None);
        await AssertTotalsAsync(source, 1, 512);
        await AssertTotalsAsync(target, 3, 1280);

        await _db.Ledger.ReleaseAsync(vm, null, CancellationToken.None);
        await _db.Ledger.ReleaseAsync(other, null, CancellationToken.None);
        await AssertTotalsAsync(source, 0, 0);
        await AssertTotalsAsync(target, 0, 0);
    }

    [Fact]
    public async Task Totals_FollowChangesMadeBySqlOutsideTheLedger()
    {
        var (n1, n2) = (await _db.AddNodeAsync("n1"), await _db.AddNodeAsync("n2"));
        var consumers = Enumerable.Range(0, 4).Select(_ => Guid.NewGuid()).ToArray();
        foreach (var consumer in consumers)
        {
            await ClaimAsync(consumer, n1, 1, 100);
        }

        // An allocation moved to another node, an amount changed, and two consumers deleted
        // in one statement (their allocations go by cascade).
        await _db.ExecuteAsync("UPDATE allocations SET node_id = $1 WHERE consumer_id = $2", n2, consumers[0]);
        await _db.ExecuteAsync("UPDATE allocations SET used = 3 WHERE consumer_id = $1 AND resource_class = 'VCPU'", consumers[1]);
        await _db.ExecuteAsync("DELETE FROM consumers WHERE id = ANY($1)", new[] { consumers[2], consumers[3] });

        await AssertTotalsAsync(n1, 3, 100);
        await AssertTotalsAsync(n2, 1, 100);

        await _db.ExecuteAsync("TRUNCATE allocations");
        await AssertTotalsAsync(n1, 0, 0);
        await AssertTotalsAsync(n2, 0, 0);
    }

    [Fact]
    public async Task Claim_IsCheckedAgainstTheRunningTotal()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 4);
        await ClaimAsync(Guid.NewGuid(), node, 1, 512);
        // The total says the node is full although its allocations hold 1 VCPU: the claim must
        // believe the total (which is why the invariant checker compares the two).
        await _db.ExecuteAsync("UPDATE node_usage SET used = 4 WHERE node_id = $1 AND resource_class = 'VCPU'", node);

        var result = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, Claim.AnyGeneration, 1, 512)], null, CancellationToken.None);

        var conflict = Assert.Single(result.Conflicts);
        Assert.Equal(ClaimConflictReason.InsufficientCapacity, conflict.Reason);
        var violation = Assert.Single(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None), v => v.StartsWith("usage:", StringComparison.Ordinal));
        Assert.Equal($"usage: node {node} counts 4 VCPU in use, but its allocations add up to 1", violation);
    }

    [Fact]
    public async Task Load_ReportsTheTotalsAndLeavesOutClassesNoLongerUsed()
    {
        var node = await _db.AddNodeAsync("n1");
        var (kept, released) = (Guid.NewGuid(), Guid.NewGuid());
        await ClaimAsync(kept, node, 2, 1024);
        await _db.ExecuteAsync("INSERT INTO allocations (consumer_id, node_id, resource_class, used) VALUES ($1, $2, 'DISK_GB', 10)", kept, node);
        await ClaimAsync(released, node, 1, 512);
        await _db.ExecuteAsync("DELETE FROM allocations WHERE consumer_id = $1 AND resource_class = 'DISK_GB'", kept);
        await _db.Ledger.ReleaseAsync(released, null, CancellationToken.None);

        var loaded = await _db.Ledger.LoadNodeAsync(node, CancellationToken.None);

        Assert.NotNull(loaded);
        Assert.Equal(new Dictionary<string, long> { ["VCPU"] = 2, ["MEMORY_MB"] = 1024 }, loaded.Used);
        Assert.Equal(0, await TotalAsync(node, "DISK_GB"));
    }

    [Fact]
    public async Task Migration_AddsTotalsForAllocationsMadeBeforeIt()
    {
        var connectionString = await PostgresFixture.Shared.CreateDatabaseAsync();
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using (var db = DatabaseMigrator.CreateContext(dataSource))
        {
            // EF reads an id as a 14-digit timestamp, '_' and a name, and finds a target that is
            // not such an id by that name; the ids here have 13 digits, so it matches what
            // follows the 15th character.
            var previous = db.Database.GetMigrations().Single(id => id.EndsWith("_HeartbeatSessions", StringComparison.Ordinal));
            await db.GetService<IMigrator>().MigrateAsync(previous[15..]);
            Assert.Equal(previous, (await db.Database.GetAppliedMigrationsAsync()).Last());
        }
        // Written by SQL, as the ledger before the totals existed wrote its rows.
        var (node, first, second) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        await using (var command = dataSource.CreateCommand($"""
            INSERT INTO nodes (id, name, address, hypervisor, accelerator, availability_zone, traits, state, schedulable, generation, registered_at)
            VALUES ('{node}', 'n1', 'http://127.0.0.2:7001', 'qemu', 'TCG', 'az1', ARRAY[]::text[], 'UP', true, 0, now());
            INSERT INTO inventories (node_id, resource_class, total, reserved, allocation_ratio, min_unit, max_unit, step_size)
            VALUES ('{node}', 'VCPU', 8, 0, 1.0, 1, 8, 1), ('{node}', 'MEMORY_MB', 4096, 0, 1.0, 1, 4096, 1);
            INSERT INTO consumers (id, kind, project_id, created_at, generation) VALUES ('{first}', 'vm', 'p', now(), 0), ('{second}', 'vm', 'p', now(), 0);
            INSERT INTO allocations (consumer_id, node_id, resource_class, used)
            VALUES ('{first}', '{node}', 'VCPU', 2), ('{first}', '{node}', 'MEMORY_MB', 1024), ('{second}', '{node}', 'VCPU', 3);
            """))
        {
            await command.ExecuteNonQueryAsync();
        }

        await DatabaseMigrator.MigrateAsync(connectionString, CancellationToken.None);

        var loaded = await new CapacityLedger(dataSource, TimeProvider.System).LoadNodeAsync(node, CancellationToken.None);
        Assert.Equal(new Dictionary<string, long> { ["VCPU"] = 5, ["MEMORY_MB"] = 1024 }, loaded!.Used);
        Assert.DoesNotContain(await LedgerInvariants.CheckAsync(dataSource, CancellationToken.None), v => v.StartsWith("usage:", StringComparison.Ordinal));
    }
}
