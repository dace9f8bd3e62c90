using Cloud.Controller.Data.Tests.Support;

namespace Cloud.Controller.Data.Tests;

public sealed class InvariantTests : IAsyncLifetime
{
    private LedgerDatabase _db = null!;

    public async Task InitializeAsync() => _db = await LedgerDatabase.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    /// <summary>A VM placed the way the controller places one: row, then claim and node in one transaction.</summary>
    private async Task<Guid> PlaceVmAsync(Guid node, long vcpus)
    {
        var vm = Guid.NewGuid();
        await _db.InsertVmAsync(vm, null);
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(vm, node, await _db.GenerationAsync(node), vcpus, 512)], transaction, CancellationToken.None)).Succeeded);
        await using (var command = new Npgsql.NpgsqlCommand("UPDATE vms SET node_id = $1, state = 'RUNNING' WHERE id = $2", connection, transaction))
        {
            command.Parameters.Add(new() { Value = node });
            command.Parameters.Add(new() { Value = vm });
            await command.ExecuteNonQueryAsync();
        }
        await transaction.CommitAsync();
        return vm;
    }

    [Fact]
    public async Task Check_LedgerKeptByTheLedger_ReportsNothing()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 4);
        await PlaceVmAsync(node, 2);
        var gone = await PlaceVmAsync(node, 2);
        await _db.Ledger.ReleaseAsync(gone, null, CancellationToken.None);
        await _db.ExecuteAsync("UPDATE vms SET state = 'DELETED', node_id = NULL WHERE id = $1", gone);

        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
    }

    [Fact]
    public async Task Check_OvercommitWrittenBySql_IsReported()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 4, cpuRatio: 1.5);
        await PlaceVmAsync(node, 3);
        var vm = await PlaceVmAsync(node, 3);
        // Behind the ledger's back: one more VCPU than floor((4 - 0) * 1.5) = 6.
        await _db.ExecuteAsync("UPDATE allocations SET used = used + 1 WHERE consumer_id = $1 AND resource_class = 'VCPU'", vm);

        var violations = await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None);

        var violation = Assert.Single(violations);
        Assert.StartsWith("overcommit: node n1", violation, StringComparison.Ordinal);
        Assert.Contains("uses 7 VCPU of a capacity of 6", violation, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_AllocationsOfDeadConsumers_AreReported()
    {
        var node = await _db.AddNodeAsync("n1");
        var deleted = await PlaceVmAsync(node, 1);
        await _db.ExecuteAsync("UPDATE vms SET state = 'DELETED', node_id = NULL WHERE id = $1", deleted);
        var neverExisted = Guid.NewGuid();
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(neverExisted, node, await _db.GenerationAsync(node), 1, 512)], null, CancellationToken.None)).Succeeded);
        var finishedMigration = Guid.NewGuid();
        await InsertOperationAsync(finishedMigration, "vm.migrate", Guid.NewGuid().ToString(), "SUCCEEDED");
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(finishedMigration, node, await _db.GenerationAsync(node), 1, 512, kind: "migration")], null, CancellationToken.None)).Succeeded);

        var violations = await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None);

        Assert.Equal(3, violations.Count);
        Assert.All(violations, v => Assert.StartsWith("orphan: consumer ", v, StringComparison.Ordinal));
        Assert.Contains(violations, v => v.Contains(deleted.ToString(), StringComparison.Ordinal));
        Assert.Contains(violations, v => v.Contains(neverExisted.ToString(), StringComparison.Ordinal));
        Assert.Contains(violations, v => v.Contains(finishedMigration.ToString(), StringComparison.Ordinal) && v.Contains("kind migration", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Check_VmCapacityOnAnotherNode_IsReportedUnlessAMigrationIsInFlight()
    {
        var source = await _db.AddNodeAsync("source");
        var target = await _db.AddNodeAsync("target");
        var vm = await PlaceVmAsync(source, 2);
        // The VM's consumer takes the target's capacity; the migration consumer keeps the source.
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(vm, target, await _db.GenerationAsync(target), 2, 512)], null, CancellationToken.None)).Succeeded);

        var misplaced = Assert.Single(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
        Assert.StartsWith($"misplaced: VM {vm} holds 2 allocation(s) on node {target} but runs on {source}", misplaced, StringComparison.Ordinal);

        var migration = Guid.NewGuid();
        await InsertOperationAsync(migration, "vm.migrate", vm.ToString(), "RUNNING");
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(migration, source, await _db.GenerationAsync(source), 1, 512, kind: "migration")], null, CancellationToken.None)).Succeeded);

        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
    }

    [Fact]
    public async Task Check_SnapshotsWhereTheLedgerKeepsThem_ReportsNothing()
    {
        var up = await _db.AddNodeAsync("n1");
        var down = await _db.AddNodeAsync("n2");
        var vm = await PlaceVmAsync(up, 1);
        await InsertSnapshotAsync(vm, up, "READY");
        // Not READY: where they are is nobody's promise.
        await InsertSnapshotAsync(vm, down, "LOST");
        await InsertSnapshotAsync(vm, null, "DELETED");
        await InsertSnapshotAsync(vm, null, "CREATING");
        await _db.ExecuteAsync("UPDATE nodes SET state = 'DOWN' WHERE id = $1", down);

        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
    }

    [Fact]
    public async Task Check_ReadySnapshotOnNoNode_IsReported()
    {
        var node = await _db.AddNodeAsync("n1");
        var vm = await PlaceVmAsync(node, 1);
        var snapshot = await InsertSnapshotAsync(vm, null, "READY");

        var violation = Assert.Single(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));

        Assert.Equal($"snapshot: READY snapshot {snapshot} of VM {vm} is on no node", violation);
    }

    [Fact]
    public async Task Check_ReadySnapshotOnANodeThatIsDown_IsReported()
    {
        var node = await _db.AddNodeAsync("n1");
        var vm = await PlaceVmAsync(node, 1);
        var snapshot = await InsertSnapshotAsync(vm, node, "READY");
        await _db.ExecuteAsync("UPDATE nodes SET state = 'DOWN' WHERE id = $1", node);

        var violation = Assert.Single(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));

        Assert.Equal($"snapshot: READY snapshot {snapshot} of VM {vm} is on node n1 ({node}), which is DOWN", violation);
    }

    [Fact]
    public async Task Check_ReadySnapshotOnAnotherNodeThanItsVm_IsReportedUnlessAMigrationIsInFlight()
    {
        var source = await _db.AddNodeAsync("source");
        var target = await _db.AddNodeAsync("target");
        var vm = await PlaceVmAsync(target, 1);
        var snapshot = await InsertSnapshotAsync(vm, source, "READY");

        var violation = Assert.Single(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
        Assert.Equal($"snapshot: READY snapshot {snapshot} of VM {vm} is on node source ({source}) but its VM is on {target}, and no migration is in flight", violation);

        await InsertOperationAsync(Guid.NewGuid(), "vm.migrate", vm.ToString(), "RUNNING");
        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
    }

    private async Task<Guid> InsertSnapshotAsync(Guid vm, Guid? node, string state)
    {
        var id = Guid.NewGuid();
        await _db.ExecuteAsync("""
            INSERT INTO snapshots (id, project_id, vm_id, name, state, node_id, includes_memory, size_bytes, error, created_at, updated_at)
            VALUES ($1, $2, $3, 'snap', $4, $5, false, 0, NULL, now(), now())
            """, id, LedgerDatabase.Project, vm, state, node);
        return id;
    }

    private Task InsertOperationAsync(Guid id, string kind, string target, string state)
        => _db.ExecuteAsync("""
            INSERT INTO operations (id, project_id, kind, target_id, state, progress, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, 0, now(), now())
            """, id, LedgerDatabase.Project, kind, target, state);
}
