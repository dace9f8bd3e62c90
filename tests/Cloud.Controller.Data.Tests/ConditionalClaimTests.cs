using Cloud.Controller.Data.Tests.Support;

namespace Cloud.Controller.Data.Tests;

/// <summary>Claims made with <see cref="Claim.AnyGeneration"/>: checked on capacity alone, under the node's lock.</summary>
public sealed class ConditionalClaimTests : IAsyncLifetime
{
    private LedgerDatabase _db = null!;

    public async Task InitializeAsync() => _db = await LedgerDatabase.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    [Fact]
    public async Task AnyGeneration_OnAChangedNodeThatStillFits_Commits()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 4, memoryMb: 4096);
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, 0, 2, 1024)], null, CancellationToken.None)).Succeeded);

        var result = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, Claim.AnyGeneration, 2, 1024)], null, CancellationToken.None);

        Assert.True(result.Succeeded);
        Assert.Equal(4, await _db.UsedAsync(node, "VCPU"));
        Assert.Equal(2, await _db.GenerationAsync(node));
    }

    [Fact]
    public async Task AnyGeneration_ThatWouldOverfill_IsRefusedAndChangesNothing()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 4, memoryMb: 4096);
        Assert.True((await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, 0, 3, 1024)], null, CancellationToken.None)).Succeeded);
        var before = await _db.LedgerFingerprintAsync();

        var result = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, Claim.AnyGeneration, 2, 1024)], null, CancellationToken.None);

        Assert.Equal(ClaimConflictReason.InsufficientCapacity, Assert.Single(result.Conflicts).Reason);
        Assert.Equal(before, await _db.LedgerFingerprintAsync());
    }

    [Fact]
    public async Task AnyGeneration_FromManyClaimersAtOnce_NeverOvercommits()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 8, memoryMb: 65536);

        var results = await Task.WhenAll(Enumerable.Range(0, 24).Select(_ => Task.Run(() =>
            _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, Claim.AnyGeneration, 1, 512)], null, CancellationToken.None))));

        Assert.Equal(8, results.Count(r => r.Succeeded));
        Assert.Equal(8, await _db.UsedAsync(node, "VCPU"));
        Assert.DoesNotContain(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None), v => v.StartsWith("overcommit", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_generation_below_AnyGeneration_is_refused()
    {
        var node = await _db.AddNodeAsync("n1");

        var error = await Assert.ThrowsAsync<ArgumentException>(() =>
            _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, -2, 1, 512)], null, CancellationToken.None));

        Assert.Contains("generations start at 0", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Statements_sent_alongside_a_claim_commit_with_it_and_are_undone_with_a_refusal()
    {
        var node = await _db.AddNodeAsync("n1", vcpus: 2, memoryMb: 4096);
        PlacementDecisionEntity Decision() => new()
        {
            Id = Guid.NewGuid(), ProjectId = LedgerDatabase.Project, Kind = "place", Outcome = "placed", NodeId = node, NodeName = "n1",
            NodesConsidered = 1, Summary = "test", Attempts = 1, CreatedAt = _db.Time.GetUtcNow(),
        };

        var placed = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, Claim.AnyGeneration, 2, 512)], null,
            [PlacementStore.RecordCommand([Decision()])], CancellationToken.None);
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var refused = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), node, Claim.AnyGeneration, 1, 512)], transaction,
            [PlacementStore.RecordCommand([Decision()])], CancellationToken.None);
        await transaction.CommitAsync();

        Assert.True(placed.Succeeded);
        Assert.False(refused.Succeeded);
        Assert.Equal(1, await _db.ScalarAsync<long>("SELECT count(*) FROM placement_decisions"));
    }
}
