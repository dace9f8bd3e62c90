using Cloud.Controller.Data.Tests.Support;

namespace Cloud.Controller.Data.Tests;

/// <summary>A migrating VM holds capacity on both nodes; when the migration ends exactly one set remains.</summary>
public sealed class LiveMigrationClaimTests : IAsyncLifetime
{
    private LedgerDatabase _db = null!;

    public async Task InitializeAsync() => _db = await LedgerDatabase.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    private async Task<Guid> PlaceVmAsync(Guid node, long vcpus, long memoryMb)
    {
        var vm = Guid.NewGuid();
        await _db.InsertVmAsync(vm, null, vcpus: (int)vcpus, memoryMb: memoryMb);
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(vm, node, await _db.GenerationAsync(node), vcpus, memoryMb)], null, CancellationToken.None)).Succeeded);
        await _db.ExecuteAsync("UPDATE vms SET node_id = $1, state = 'RUNNING' WHERE id = $2", node, vm);
        return vm;
    }

    /// <summary>The migration's operation, as the controller records it, so that the invariant checker sees a live migration.</summary>
    private Task InsertMigrationOperationAsync(Guid migration, Guid vm, string state = "RUNNING")
        => _db.ExecuteAsync("""
            INSERT INTO operations (id, project_id, kind, target_id, state, progress, created_at, updated_at)
            VALUES ($1, $2, 'vm.migrate', $3, $4, 0, now(), now())
            """, migration, LedgerDatabase.Project, vm.ToString(), state);

    private Task<List<string>> HoldingsAsync()
        => _db.RowsAsync("""
            SELECT c.kind, n.name, a.resource_class, a.used
              FROM allocations AS a JOIN consumers AS c ON c.id = a.consumer_id JOIN nodes AS n ON n.id = a.node_id
             ORDER BY c.kind, n.name, a.resource_class
            """);

    [Fact]
    public async Task Begin_HoldsBothNodes_AndConfirmLeavesOnlyTheTarget()
    {
        var source = await _db.AddNodeAsync("src", vcpus: 4, memoryMb: 4096);
        var target = await _db.AddNodeAsync("dst", vcpus: 4, memoryMb: 4096);
        var vm = await PlaceVmAsync(source, 2, 1024);
        var migration = Guid.NewGuid();
        await InsertMigrationOperationAsync(migration, vm);
        var sourceGeneration = await _db.GenerationAsync(source);

        var begun = await _db.Ledger.BeginMigrationAsync(vm, migration, source, target, await _db.GenerationAsync(target), null, CancellationToken.None);

        Assert.True(begun.Succeeded);
        Assert.Equal(
            ["migration | src | MEMORY_MB | 1024", "migration | src | VCPU | 2", "vm | dst | MEMORY_MB | 1024", "vm | dst | VCPU | 2"],
            await HoldingsAsync());
        // The hand-over changed nobody's free capacity on the source: its generation stays.
        Assert.Equal(sourceGeneration, await _db.GenerationAsync(source));
        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));

        var freed = await _db.Ledger.EndMigrationAsync(vm, migration, confirm: true, null, CancellationToken.None);
        await _db.ExecuteAsync("UPDATE vms SET node_id = $1 WHERE id = $2", target, vm);
        await _db.ExecuteAsync("UPDATE operations SET state = 'SUCCEEDED' WHERE id = $1", migration);

        Assert.Equal([source], freed);
        Assert.Equal(["vm | dst | MEMORY_MB | 1024", "vm | dst | VCPU | 2"], await HoldingsAsync());
        Assert.Equal(0, await _db.ScalarAsync<long>("SELECT count(*) FROM consumers WHERE kind = 'migration'"));
        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
    }

    [Fact]
    public async Task Revert_GivesTheSourceBack_AndFreesTheTarget_AndIsHarmlessTwice()
    {
        var source = await _db.AddNodeAsync("src", vcpus: 4, memoryMb: 4096);
        var target = await _db.AddNodeAsync("dst", vcpus: 4, memoryMb: 4096);
        var vm = await PlaceVmAsync(source, 2, 1024);
        var migration = Guid.NewGuid();
        await InsertMigrationOperationAsync(migration, vm);
        Assert.True((await _db.Ledger.BeginMigrationAsync(vm, migration, source, target, await _db.GenerationAsync(target), null, CancellationToken.None)).Succeeded);
        var targetGeneration = await _db.GenerationAsync(target);

        var freed = await _db.Ledger.EndMigrationAsync(vm, migration, confirm: false, null, CancellationToken.None);
        var again = await _db.Ledger.EndMigrationAsync(vm, migration, confirm: false, null, CancellationToken.None);
        await _db.ExecuteAsync("UPDATE operations SET state = 'FAILED' WHERE id = $1", migration);

        Assert.Equal([target], freed);
        Assert.Empty(again);
        Assert.Equal(targetGeneration + 1, await _db.GenerationAsync(target));
        Assert.Equal(["vm | src | MEMORY_MB | 1024", "vm | src | VCPU | 2"], await HoldingsAsync());
        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
    }

    [Fact]
    public async Task Begin_TargetTooSmall_IsRefusedAndChangesNothing()
    {
        var source = await _db.AddNodeAsync("src", vcpus: 4, memoryMb: 4096);
        var target = await _db.AddNodeAsync("dst", vcpus: 4, memoryMb: 4096);
        var vm = await PlaceVmAsync(source, 2, 1024);
        await PlaceVmAsync(target, 3, 1024);
        var before = await _db.LedgerFingerprintAsync();

        var result = await _db.Ledger.BeginMigrationAsync(vm, Guid.NewGuid(), source, target, await _db.GenerationAsync(target), null, CancellationToken.None);

        Assert.False(result.Succeeded);
        Assert.Equal(ClaimConflictReason.InsufficientCapacity, Assert.Single(result.Conflicts).Reason);
        Assert.Equal(before, await _db.LedgerFingerprintAsync());
    }

    [Fact]
    public async Task Begin_StaleTargetGeneration_IsRefusedInsideTheCallersTransaction()
    {
        var source = await _db.AddNodeAsync("src");
        var target = await _db.AddNodeAsync("dst");
        var vm = await PlaceVmAsync(source, 1, 512);
        var stale = await _db.GenerationAsync(target);
        await PlaceVmAsync(target, 1, 512);
        var before = await _db.LedgerFingerprintAsync();

        await using var connection = await _db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var result = await _db.Ledger.BeginMigrationAsync(vm, Guid.NewGuid(), source, target, stale, transaction, CancellationToken.None);
        // The caller's transaction is still usable and commits nothing of the refused migration.
        await transaction.CommitAsync();

        Assert.Equal(ClaimConflictReason.StaleGeneration, Assert.Single(result.Conflicts).Reason);
        Assert.Equal(before, await _db.LedgerFingerprintAsync());
    }

    [Fact]
    public async Task Begin_BadInput_IsRefusedWithAClearError()
    {
        var source = await _db.AddNodeAsync("src");
        var target = await _db.AddNodeAsync("dst");
        var vm = await PlaceVmAsync(source, 1, 512);
        var before = await _db.LedgerFingerprintAsync();

        var same = await Assert.ThrowsAsync<ArgumentException>(() => _db.Ledger.BeginMigrationAsync(vm, Guid.NewGuid(), source, source, 0, null, CancellationToken.None));
        var nothing = await Assert.ThrowsAsync<ArgumentException>(() => _db.Ledger.BeginMigrationAsync(vm, Guid.NewGuid(), target, source, 0, null, CancellationToken.None));

        Assert.Contains("source and target are the same", same.Message, StringComparison.Ordinal);
        Assert.Contains("holds no capacity", nothing.Message, StringComparison.Ordinal);
        Assert.Equal(before, await _db.LedgerFingerprintAsync());
    }

    [Fact]
    public async Task Invariants_MigrationAllocationsAfterTheMigrationFailed_AreReportedAsOrphans()
    {
        var source = await _db.AddNodeAsync("src");
        var target = await _db.AddNodeAsync("dst");
        var vm = await PlaceVmAsync(source, 1, 512);
        var migration = Guid.NewGuid();
        await InsertMigrationOperationAsync(migration, vm);
        Assert.True((await _db.Ledger.BeginMigrationAsync(vm, migration, source, target, await _db.GenerationAsync(target), null, CancellationToken.None)).Succeeded);

        // The operation ends but nobody ends the migration in the ledger: both sets linger.
        await _db.ExecuteAsync("UPDATE operations SET state = 'FAILED' WHERE id = $1", migration);

        var violations = await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None);
        Assert.Contains(violations, v => v.StartsWith($"orphan: consumer {migration}", StringComparison.Ordinal));
        Assert.Contains(violations, v => v.StartsWith($"misplaced: VM {vm}", StringComparison.Ordinal));
    }
}
