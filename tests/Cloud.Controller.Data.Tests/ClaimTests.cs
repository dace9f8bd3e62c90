using Cloud.Controller.Data.Tests.Support;
using Npgsql;

namespace Cloud.Controller.Data.Tests;

public sealed class ClaimTests : IAsyncLifetime
{
    private LedgerDatabase _db = null!;

    public async Task InitializeAsync() => _db = await LedgerDatabase.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    [Fact]
    public async Task TryClaim_WithinCapacity_CommitsAndBumpsTheGenerationOnce()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 4, memoryMb: 4096);
        var generation = await _db.GenerationAsync(node);

        var result = await _db.Ledger.TryClaimAsync(
            [LedgerDatabase.ClaimFor(Guid.NewGuid(), node, generation, 2, 1024), LedgerDatabase.ClaimFor(Guid.NewGuid(), node, generation, 2, 1024)],
            null, CancellationToken.None);

        Assert.True(result.Succeeded);
        Assert.Empty(result.ConflictingNodeIds);
        Assert.Equal(4, await _db.UsedAsync(node, "VCPU"));
        Assert.Equal(2048, await _db.UsedAsync(node, "MEMORY_MB"));
        Assert.Equal(generation + 1, await _db.GenerationAsync(node));
        Assert.Equal(2, await _db.ScalarAsync<long>("SELECT count(*) FROM consumers WHERE kind = 'vm' AND project_id = $1", LedgerDatabase.Project));
    }

    [Fact]
    public async Task TryClaim_ExceedingCapacity_IsRefusedAndChangesNothing()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 4, memoryMb: 4096);
        var generation = await _db.GenerationAsync(node);
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, generation, 3, 1024)], null, CancellationToken.None)).Succeeded);
        var before = await _db.LedgerFingerprintAsync();

        var result = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, generation + 1, 2, 1024)], null, CancellationToken.None);

        Assert.False(result.Succeeded);
        Assert.Equal([new ClaimConflict(node, ClaimConflictReason.InsufficientCapacity)], result.Conflicts);
        Assert.Equal(before, await _db.LedgerFingerprintAsync());
        Assert.Equal(3, await _db.UsedAsync(node, "VCPU"));
    }

    [Fact]
    public async Task TryClaim_StaleGeneration_IsRefusedWithTheNodeListed()
    {
        var node = await _db.AddNodeAsync("n1");
        var other = await _db.AddNodeAsync("n2");
        var stale = await _db.GenerationAsync(node);
        // Someone else claims first: the generation moves on.
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, stale, 1, 512)], null, CancellationToken.None)).Succeeded);
        var before = await _db.LedgerFingerprintAsync();

        var result = await _db.Ledger.TryClaimAsync(
            [LedgerDatabase.ClaimFor(Guid.NewGuid(), node, stale, 1, 512), LedgerDatabase.ClaimFor(Guid.NewGuid(), other, await _db.GenerationAsync(other), 1, 512)],
            null, CancellationToken.None);

        Assert.False(result.Succeeded);
        Assert.Equal([node], result.ConflictingNodeIds);
        Assert.Equal(ClaimConflictReason.StaleGeneration, Assert.Single(result.Conflicts).Reason);
        Assert.Equal(before, await _db.LedgerFingerprintAsync());

        // With the refreshed generation the same claim goes through.
        var retry = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, stale + 1, 1, 512)], null, CancellationToken.None);
        Assert.True(retry.Succeeded);
    }

    [Fact]
    public async Task TryClaim_BatchWithOneClaimTooBig_CommitsNothing()
    {
        var nodes = new[] { await _db.AddNodeAsync("n1", vcpus: 4), await _db.AddNodeAsync("n2", vcpus: 4), await _db.AddNodeAsync("n3", vcpus: 2) };
        var claims = new List<Claim>();
        foreach (var node in nodes)
        {
            claims.Add(LedgerDatabase.ClaimFor(Guid.NewGuid(), node, await _db.GenerationAsync(node), 3, 512));
        }
        var before = await _db.LedgerFingerprintAsync();

        var result = await _db.Ledger.TryClaimAsync(claims, null, CancellationToken.None);

        Assert.False(result.Succeeded);
        Assert.Equal([nodes[2]], result.ConflictingNodeIds);
        Assert.Equal(before, await _db.LedgerFingerprintAsync());
        Assert.Equal(0, await _db.ScalarAsync<long>("SELECT count(*) FROM allocations"));
        Assert.Equal(0, await _db.ScalarAsync<long>("SELECT count(*) FROM consumers"));
    }

    [Fact]
    public async Task TryClaim_ReservedAndAllocationRatio_BoundTheCapacity()
    {
        // (4 - 1) * 2.5 = 7.5, floored to 7 VCPU; (4096 - 1024) * 1.0 = 3072 MB.
        var node = await _db.AddNodeAsync("n1", vcpus: 4, reservedVcpus: 1, cpuRatio: 2.5, memoryMb: 4096, reservedMemoryMb: 1024);

        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, await _db.GenerationAsync(node), 4, 3072)], null, CancellationToken.None)).Succeeded);
        var tooMuchMemory = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, await _db.GenerationAsync(node), 1, 1)], null, CancellationToken.None);
        var cpuOnly = new Claim(Guid.NewGuid(), "vm", LedgerDatabase.Project, node, await _db.GenerationAsync(node), new Dictionary<string, long> { ["VCPU"] = 3 });
        var fits = await _db.Ledger.TryClaimAsync([cpuOnly], null, CancellationToken.None);
        var oneMore = new Claim(Guid.NewGuid(), "vm", LedgerDatabase.Project, node, await _db.GenerationAsync(node), new Dictionary<string, long> { ["VCPU"] = 1 });
        var overRatio = await _db.Ledger.TryClaimAsync([oneMore], null, CancellationToken.None);

        Assert.Equal(ClaimConflictReason.InsufficientCapacity, Assert.Single(tooMuchMemory.Conflicts).Reason);
        Assert.True(fits.Succeeded);
        Assert.Equal(ClaimConflictReason.InsufficientCapacity, Assert.Single(overRatio.Conflicts).Reason);
        Assert.Equal(7, await _db.UsedAsync(node, "VCPU"));
        var view = await _db.Ledger.LoadNodeAsync(node, CancellationToken.None);
        Assert.Equal(0, view!.Free("VCPU"));
        Assert.Equal(0, view.Free("MEMORY_MB"));
    }

    [Fact]
    public async Task TryClaim_AllocationBreakingUnitRules_IsRefused()
    {
        var node = await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("n1", new Dictionary<string, ResourceInventory>
        {
            ["VCPU"] = new(16, 0, 1.0, 1, 4, 1),
            ["MEMORY_MB"] = new(65536, 0, 1.0, 512, 65536, 256),
        }), CancellationToken.None);
        async Task<ClaimResult> ClaimAsync(long vcpus, long memoryMb)
            => await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, await _db.GenerationAsync(node), vcpus, memoryMb)], null, CancellationToken.None);

        var aboveMaxUnit = await ClaimAsync(5, 1024);
        var belowMinUnit = await ClaimAsync(1, 256);
        var offStep = await ClaimAsync(1, 1000);
        var fine = await ClaimAsync(4, 1024);

        Assert.Equal(ClaimConflictReason.InsufficientCapacity, Assert.Single(aboveMaxUnit.Conflicts).Reason);
        Assert.Equal(ClaimConflictReason.InsufficientCapacity, Assert.Single(belowMinUnit.Conflicts).Reason);
        Assert.Equal(ClaimConflictReason.InsufficientCapacity, Assert.Single(offStep.Conflicts).Reason);
        Assert.True(fine.Succeeded);
        Assert.Equal(4, await _db.UsedAsync(node, "VCPU"));
    }

    [Fact]
    public async Task TryClaim_ClassTheNodeDoesNotOffer_IsRefused()
    {
        var node = await _db.AddNodeAsync("n1");
        var claim = new Claim(Guid.NewGuid(), "vm", LedgerDatabase.Project, node, await _db.GenerationAsync(node), new Dictionary<string, long> { ["CUSTOM_GPU"] = 1 });

        var result = await _db.Ledger.TryClaimAsync([claim], null, CancellationToken.None);

        Assert.Equal([new ClaimConflict(node, ClaimConflictReason.InsufficientCapacity)], result.Conflicts);
        Assert.Equal(0, await _db.ScalarAsync<long>("SELECT count(*) FROM allocations"));
    }

    [Fact]
    public async Task TryClaim_NodeThatDoesNotExist_IsReportedMissing()
    {
        var node = await _db.AddNodeAsync("n1");
        var ghost = Guid.NewGuid();

        var result = await _db.Ledger.TryClaimAsync(
            [LedgerDatabase.ClaimFor(Guid.NewGuid(), node, await _db.GenerationAsync(node), 1, 512), LedgerDatabase.ClaimFor(Guid.NewGuid(), ghost, 0, 1, 512)],
            null, CancellationToken.None);

        Assert.Equal([new ClaimConflict(ghost, ClaimConflictReason.NodeMissing)], result.Conflicts);
        Assert.Equal(0, await _db.ScalarAsync<long>("SELECT count(*) FROM allocations"));
    }

    [Fact]
    public async Task TryClaim_StaleAndMissingNodesInOneBatch_AreEachListedWithItsReason()
    {
        var fresh = await _db.AddNodeAsync("n1");
        var stale = await _db.AddNodeAsync("n2");
        var ghost = Guid.NewGuid();
        var before = await _db.LedgerFingerprintAsync();

        var result = await _db.Ledger.TryClaimAsync(
            [
                LedgerDatabase.ClaimFor(Guid.NewGuid(), fresh, await _db.GenerationAsync(fresh), 1, 512),
                LedgerDatabase.ClaimFor(Guid.NewGuid(), stale, await _db.GenerationAsync(stale) + 5, 1, 512),
                LedgerDatabase.ClaimFor(Guid.NewGuid(), ghost, 0, 1, 512),
            ],
            null, CancellationToken.None);

        Assert.Equal(
            new[] { new ClaimConflict(stale, ClaimConflictReason.StaleGeneration), new ClaimConflict(ghost, ClaimConflictReason.NodeMissing) }.OrderBy(c => c.NodeId),
            result.Conflicts.OrderBy(c => c.NodeId));
        Assert.Equal(before, await _db.LedgerFingerprintAsync());
    }

    [Theory]
    [InlineData("something else went wrong")]
    [InlineData("claim refused: ")]
    [InlineData("claim refused: StaleGeneration")]
    [InlineData("claim refused: StaleGeneration not-a-guid")]
    [InlineData("claim refused: Tired 0190a3c4-2b1d-7c4e-9f00-000000000001")]
    [InlineData("claim refused: 7 0190a3c4-2b1d-7c4e-9f00-000000000001")]
    [InlineData("claim refused: 1 0190a3c4-2b1d-7c4e-9f00-000000000001")]
    [InlineData("claim refused: stalegeneration 0190a3c4-2b1d-7c4e-9f00-000000000001")]
    [InlineData("claim refused: StaleGeneration 0190a3c4-2b1d-7c4e-9f00-000000000001,NodeMissing 0190a3c4-2b1d-7c4e-9f00-000000000002")]
    public void Refusals_InAnotherShape_AreAnErrorNotAConflict(string message)
    {
        var error = Assert.Throws<InvalidOperationException>(() => CapacityLedger.ParseRefusals(message, out _));

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refusals_NameEachNodeWithItsReason_AndAConsumerMismatchApart()
    {
        var a = Guid.NewGuid();
        var b = Guid.NewGuid();

        var conflicts = CapacityLedger.ParseRefusals($"claim refused: StaleGeneration {a}, InsufficientCapacity {b}", out var mismatch);
        CapacityLedger.ParseRefusals($"claim refused: ConsumerMismatch {a}", out var consumerMismatch);

        Assert.Equal([new ClaimConflict(a, ClaimConflictReason.StaleGeneration), new ClaimConflict(b, ClaimConflictReason.InsufficientCapacity)], conflicts);
        Assert.False(mismatch);
        Assert.True(consumerMismatch);
    }

    [Fact]
    public async Task TryClaim_WithoutATransaction_RefusedAfterItsStatementsRan_LeavesNothingAndTheConnectionClean()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 2, memoryMb: 4096);
        var marker = new NpgsqlBatchCommand("INSERT INTO consumers (id, kind, project_id, created_at, generation) VALUES ($1, 'vm', 'marker', now(), 0)")
        {
            Parameters = { new NpgsqlParameter { Value = Guid.NewGuid() } },
        };
        var before = await _db.LedgerFingerprintAsync();

        // The statement alongside and the allocations run before the capacity check refuses.
        var refused = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, Claim.AnyGeneration, 3, 512)], null, [marker], CancellationToken.None);
        var placed = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, Claim.AnyGeneration, 2, 512)], null, CancellationToken.None);

        Assert.Equal([new ClaimConflict(node, ClaimConflictReason.InsufficientCapacity)], refused.Conflicts);
        Assert.True(placed.Succeeded);
        Assert.Equal(0, await _db.ScalarAsync<long>("SELECT count(*) FROM consumers WHERE project_id = 'marker'"));
        Assert.NotEqual(before, await _db.LedgerFingerprintAsync());
        Assert.Equal(2, await _db.UsedAsync(node, "VCPU"));
    }

    [Fact]
    public async Task TryClaim_SameConsumerTwice_AddsToWhatItHolds()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 8);
        var consumer = Guid.NewGuid();
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(consumer, node, await _db.GenerationAsync(node), 2, 1024)], null, CancellationToken.None)).Succeeded);

        // A resize claims the difference on the same node.
        var resize = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(consumer, node, await _db.GenerationAsync(node), 2, 1024)], null, CancellationToken.None);

        Assert.True(resize.Succeeded);
        Assert.Equal(["4 | 2048"], await _db.RowsAsync(
            "SELECT sum(used) FILTER (WHERE resource_class = 'VCPU'), sum(used) FILTER (WHERE resource_class = 'MEMORY_MB') FROM allocations WHERE consumer_id = $1", consumer));
        Assert.Equal(1, await _db.ScalarAsync<long>("SELECT generation FROM consumers WHERE id = $1", consumer));
    }

    [Fact]
    public async Task TryClaim_InCallersTransaction_RefusalKeepsTheCallersWorkAndSuccessWaitsForItsCommit()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 2);
        var generation = await _db.GenerationAsync(node);
        var vm = Guid.NewGuid();
        await using (var connection = await _db.DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await _db.InsertVmAsync(vm, null, transaction: transaction);
            var refused = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(vm, node, generation, 3, 512)], transaction, CancellationToken.None);
            Assert.False(refused.Succeeded);

            var accepted = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(vm, node, generation, 2, 512)], transaction, CancellationToken.None);
            Assert.True(accepted.Succeeded);
            // Not visible to others until the caller commits.
            Assert.Equal(0, await _db.UsedAsync(node, "VCPU"));
            await transaction.CommitAsync();
        }

        Assert.Equal(1, await _db.ScalarAsync<long>("SELECT count(*) FROM vms WHERE id = $1", vm));
        Assert.Equal(2, await _db.UsedAsync(node, "VCPU"));
        Assert.Equal(generation + 1, await _db.GenerationAsync(node));
    }

    [Fact]
    public async Task TryClaim_InCallersTransactionRolledBack_LeavesNoTrace()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 2);
        var before = await _db.LedgerFingerprintAsync();
        await using (var connection = await _db.DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, await _db.GenerationAsync(node), 1, 512)], transaction, CancellationToken.None)).Succeeded);
            await transaction.RollbackAsync();
        }

        Assert.Equal(before, await _db.LedgerFingerprintAsync());
    }

    [Fact]
    public async Task TryClaim_NodeLockedByAnotherTransaction_ReportsContentionAndKeepsTheCallersTransactionUsable()
    {
        var node = await _db.AddNodeAsync("n1");
        var vm = Guid.NewGuid();
        await using var holder = await _db.DataSource.OpenConnectionAsync();
        await using var holding = await holder.BeginTransactionAsync();
        await using (var lockNode = new Npgsql.NpgsqlCommand("SELECT 1 FROM nodes WHERE id = $1 FOR UPDATE", holder, holding) { Parameters = { new() { Value = node } } })
        {
            await lockNode.ExecuteNonQueryAsync();
        }

        await using (var connection = await _db.DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await _db.InsertVmAsync(vm, null, transaction: transaction);
            await using (var timeout = new Npgsql.NpgsqlCommand("SET LOCAL lock_timeout = '200ms'", connection, transaction))
            {
                await timeout.ExecuteNonQueryAsync();
            }

            var result = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(vm, node, 0, 1, 512)], transaction, CancellationToken.None);

            Assert.Equal([new ClaimConflict(node, ClaimConflictReason.Contention)], result.Conflicts);
            await transaction.CommitAsync();
        }
        await holding.RollbackAsync();

        Assert.Equal(1, await _db.ScalarAsync<long>("SELECT count(*) FROM vms WHERE id = $1", vm));
        Assert.Equal(0, await _db.ScalarAsync<long>("SELECT count(*) FROM allocations"));
        Assert.Equal(0, await _db.GenerationAsync(node));
    }

    [Fact]
    public async Task TryClaim_MalformedClaims_AreRefusedWithAClearError()
    {
        var node = await _db.AddNodeAsync("n1");
        var generation = await _db.GenerationAsync(node);
        Claim Make(string kind = "vm", long vcpus = 1, string project = LedgerDatabase.Project) => new(
            Guid.NewGuid(), kind, project, node, generation, new Dictionary<string, long> { ["VCPU"] = vcpus });

        var zero = await Assert.ThrowsAsync<ArgumentException>(() => _db.Ledger.TryClaimAsync([Make(vcpus: 0)], null, CancellationToken.None));
        var kind = await Assert.ThrowsAsync<ArgumentException>(() => _db.Ledger.TryClaimAsync([Make(kind: "container")], null, CancellationToken.None));
        var project = await Assert.ThrowsAsync<ArgumentException>(() => _db.Ledger.TryClaimAsync([Make(project: " ")], null, CancellationToken.None));
        var generations = await Assert.ThrowsAsync<ArgumentException>(() => _db.Ledger.TryClaimAsync(
            [Make(), Make() with { ExpectedGeneration = generation + 1 }], null, CancellationToken.None));

        Assert.Contains("amounts must be positive", zero.Message, StringComparison.Ordinal);
        Assert.Contains("consumer kind 'container'", kind.Message, StringComparison.Ordinal);
        Assert.Contains("no project id", project.Message, StringComparison.Ordinal);
        Assert.Contains("share the generation", generations.Message, StringComparison.Ordinal);
        Assert.Equal(generation, await _db.GenerationAsync(node));
    }

    [Fact]
    public async Task TryClaim_ConsumerKnownWithAnotherProject_IsRefusedAndChangesNothing()
    {
        var node = await _db.AddNodeAsync("n1");
        var consumer = Guid.NewGuid();
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(consumer, node, await _db.GenerationAsync(node), 1, 512)], null, CancellationToken.None)).Succeeded);
        var before = await _db.LedgerFingerprintAsync();

        var claim = LedgerDatabase.ClaimFor(consumer, node, await _db.GenerationAsync(node), 1, 512) with { ProjectId = "someone-else" };
        await Assert.ThrowsAsync<ArgumentException>(() => _db.Ledger.TryClaimAsync([claim], null, CancellationToken.None));

        Assert.Equal(before, await _db.LedgerFingerprintAsync());
    }

    [Fact]
    public async Task TryClaim_EmptyBatch_SucceedsWithoutTouchingAnything()
    {
        var node = await _db.AddNodeAsync("n1");
        var before = await _db.LedgerFingerprintAsync();

        var result = await _db.Ledger.TryClaimAsync([], null, CancellationToken.None);

        Assert.True(result.Succeeded);
        Assert.Equal(before, await _db.LedgerFingerprintAsync());
        Assert.Equal(0, await _db.GenerationAsync(node));
    }

    [Fact]
    public async Task TryClaim_FiveHundredClaimsInOneBatch_AllCommitted()
    {
        var nodes = new List<Guid>();
        for (var i = 0; i < 50; i++)
        {
            nodes.Add(await _db.AddNodeAsync($"n{i}", vcpus: 10, memoryMb: 10 * 512));
        }
        var claims = new List<Claim>();
        for (var i = 0; i < 500; i++)
        {
            claims.Add(LedgerDatabase.ClaimFor(Guid.NewGuid(), nodes[i % 50], 0, 1, 512));
        }

        var result = await _db.Ledger.TryClaimAsync(claims, null, CancellationToken.None);

        Assert.True(result.Succeeded);
        Assert.Equal(["50 | 1 | 1 | 10 | 10"], await _db.RowsAsync("""
            SELECT count(*), min(generation), max(generation),
                   min((SELECT sum(used) FROM allocations a WHERE a.node_id = n.id AND a.resource_class = 'VCPU')),
                   max((SELECT sum(used) FROM allocations a WHERE a.node_id = n.id AND a.resource_class = 'VCPU'))
              FROM nodes n
            """));
    }

    [Fact]
    public async Task Release_FreesTheCapacityAndBumpsTheGeneration()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 2);
        var consumer = Guid.NewGuid();
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(consumer, node, 0, 2, 512)], null, CancellationToken.None)).Succeeded);
        Assert.False((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, 1, 2, 512)], null, CancellationToken.None)).Succeeded);

        var released = await _db.Ledger.ReleaseAsync(consumer, null, CancellationToken.None);

        Assert.Equal([node], released);
        Assert.Equal(2, await _db.GenerationAsync(node));
        Assert.Equal(0, await _db.UsedAsync(node, "VCPU"));
        Assert.Equal(0, await _db.ScalarAsync<long>("SELECT count(*) FROM consumers WHERE id = $1", consumer));
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, 2, 2, 512)], null, CancellationToken.None)).Succeeded);
    }

    [Fact]
    public async Task Release_UnknownConsumer_DoesNothing()
    {
        var node = await _db.AddNodeAsync("n1");
        var before = await _db.LedgerFingerprintAsync();

        var released = await _db.Ledger.ReleaseAsync(Guid.NewGuid(), null, CancellationToken.None);

        Assert.Empty(released);
        Assert.Equal(before, await _db.LedgerFingerprintAsync());
    }

    [Fact]
    public async Task Release_InCallersTransaction_TakesEffectOnItsCommit()
    {
        var node = await _db.AddNodeAsync("n1");
        var consumer = Guid.NewGuid();
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(consumer, node, 0, 2, 512)], null, CancellationToken.None)).Succeeded);

        await using (var connection = await _db.DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            Assert.Equal([node], await _db.Ledger.ReleaseAsync(consumer, transaction, CancellationToken.None));
            Assert.Equal(2, await _db.UsedAsync(node, "VCPU"));
            await transaction.CommitAsync();
        }

        Assert.Equal(0, await _db.UsedAsync(node, "VCPU"));
    }
}
