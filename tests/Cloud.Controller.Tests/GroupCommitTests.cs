using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Cloud.Controller.Tests.Support;
using Npgsql;

namespace Cloud.Controller.Tests;

/// <summary>
/// Group commit against a real PostgreSQL: one-VM requests queued while the claim loop is busy
/// are claimed together in one transaction, and each caller gets its own answer. The replicas
/// run one claim loop, so that a request holding it keeps the others queued.
/// </summary>
public sealed class GroupCommitTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private SchedulerReplicas _db = null!;

    public async Task InitializeAsync() => _db = await SchedulerReplicas.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    /// <summary>
    /// A request whose work in the transaction waits for the test: while it does, the claim loop
    /// is busy and every request made meanwhile queues for the next group.
    /// </summary>
    private sealed class Blocker
    {
        private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<PlacementResult> Placement { get; private set; } = null!;

        public static async Task<Blocker> StartAsync(Scheduler scheduler, PlacementConstraints? constraints = null)
        {
            var blocker = new Blocker();
            var vm = Guid.NewGuid();
            blocker.Placement = scheduler.PlaceAsync(vm, SchedulerReplicas.Project, new PlacementRequest(new ResourceRequest(1, 512, 0), constraints),
                async (tx, node, ct) =>
                {
                    await SchedulerReplicas.InsertVmsAsync(tx, [(vm, node.NodeId)]);
                    blocker._entered.TrySetResult();
                    await blocker._release.Task.WaitAsync(ct);
                }, CancellationToken.None);
            await blocker._entered.Task.WaitAsync(Patience);
            return blocker;
        }

        public async Task ReleaseAsync()
        {
            _release.TrySetResult();
            Assert.True((await Placement.WaitAsync(Patience)).Placed);
        }
    }

    private static Task<PlacementResult> Place(Scheduler scheduler, Guid vm, int vcpus = 1, PlacementConstraints? constraints = null,
        Func<NpgsqlTransaction, NodeCapacity, CancellationToken, Task>? then = null, CancellationToken cancellationToken = default)
        => scheduler.PlaceAsync(vm, SchedulerReplicas.Project, new PlacementRequest(new ResourceRequest(vcpus, 512, 0), constraints),
            async (tx, node, ct) =>
            {
                await SchedulerReplicas.InsertVmsAsync(tx, [(vm, node.NodeId)]);
                if (then is not null)
                {
                    await then(tx, node, ct);
                }
            }, cancellationToken);

    private static async Task WaitForQueueAsync(Scheduler scheduler, int count)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (scheduler.QueuedPlacements < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{scheduler.QueuedPlacements} of {count} requests queued");
            await Task.Delay(10);
        }
    }

    /// <summary>The transactions that wrote these consumers (xmin is the inserting transaction's id).</summary>
    private async Task<long> TransactionsOfAsync(IEnumerable<Guid> consumers)
        => await _db.ScalarAsync("SELECT count(DISTINCT xmin::text) FROM consumers WHERE id = ANY($1)", consumers.ToArray());

    [Fact]
    public async Task Requests_queued_while_a_group_commits_are_claimed_in_one_transaction()
    {
        await _db.AddNodeAsync("n1", vcpus: 32, memoryMb: 65536);
        await _db.AddNodeAsync("n2", vcpus: 32, memoryMb: 65536);
        var scheduler = _db.NewReplica(claimLoops: 1);
        var blocker = await Blocker.StartAsync(scheduler);

        var vms = Enumerable.Range(0, 30).Select(_ => Guid.NewGuid()).ToList();
        var placing = vms.Select(vm => Task.Run(() => Place(scheduler, vm))).ToList();
        await WaitForQueueAsync(scheduler, vms.Count);
        await blocker.ReleaseAsync();
        var results = await Task.WhenAll(placing).WaitAsync(Patience);

        Assert.All(results, r => Assert.True(r.Placed));
        Assert.Equal(vms.Count, results.Select(r => r.DecisionId).Distinct().Count());
        Assert.Equal(1, await TransactionsOfAsync(vms));
        Assert.Equal(31, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions WHERE kind = 'place' AND outcome = 'placed'"));
        await AssertLedgerAsync(vcpusUsed: 31);
    }

    [Fact]
    public async Task A_request_that_does_not_fit_or_whose_work_throws_fails_alone()
    {
        var (scheduler, blocker) = await OneNodeAndABusyLoopAsync();

        var fits = new[] { Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid() };
        var (tooBig, throws) = (Guid.NewGuid(), Guid.NewGuid());
        var placing = fits.Select(vm => Place(scheduler, vm)).ToList();
        var big = Place(scheduler, tooBig, vcpus: 64);
        var thrower = Place(scheduler, throws, then: (_, _, _) => throw new InvalidOperationException("the VM changed meanwhile"));
        await WaitForQueueAsync(scheduler, 5);
        await blocker.ReleaseAsync();

        var placed = await Task.WhenAll(placing).WaitAsync(Patience);
        Assert.All(placed, r => Assert.True(r.Placed));
        var refused = await big.WaitAsync(Patience);
        Assert.False(refused.Placed);
        Assert.Equal(1, refused.Failure!.RejectedByFilter["resource-fit"]);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => thrower.WaitAsync(Patience));
        Assert.Equal("the VM changed meanwhile", error.Message);

        Assert.Equal(1, await TransactionsOfAsync(fits));
        Assert.Equal(0, await _db.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = ANY($1)", new[] { tooBig, throws }));
        Assert.Equal(0, await _db.ScalarAsync("SELECT count(*) FROM vms WHERE id = ANY($1)", new[] { tooBig, throws }));
        Assert.Equal("failed", await DecisionOutcomeAsync(tooBig));
        Assert.Equal(0, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions WHERE consumer_id = $1", throws));
        await AssertLedgerAsync(vcpusUsed: 4);
    }

    [Fact]
    public async Task Later_requests_of_a_group_see_the_capacity_earlier_ones_took()
    {
        // 8 vCPUs, 1 of them the blocker's: room for 7 of the 8 queued.
        var (scheduler, blocker) = await OneNodeAndABusyLoopAsync();
        var vms = Enumerable.Range(0, 8).Select(_ => Guid.NewGuid()).ToList();
        var placing = vms.Select(vm => Place(scheduler, vm)).ToList();
        await WaitForQueueAsync(scheduler, vms.Count);
        await blocker.ReleaseAsync();

        var results = await Task.WhenAll(placing).WaitAsync(Patience);

        Assert.Equal(7, results.Count(r => r.Placed));
        var refused = Assert.Single(results, r => !r.Placed);
        Assert.Equal(1, refused.Failure!.RejectedByFilter["resource-fit"]);
        // Decided as the group went, not refused by the ledger and decided again.
        Assert.Equal(1, await TransactionsOfAsync(vms));
        Assert.Equal(7, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions WHERE consumer_id = ANY($1) AND outcome = 'placed' AND attempts = 1", vms.ToArray()));
        await AssertLedgerAsync(vcpusUsed: 8);
    }

    [Fact]
    public async Task A_request_cancelled_while_queued_ends_at_once_and_writes_nothing()
    {
        var (scheduler, blocker) = await OneNodeAndABusyLoopAsync();

        using var cancellation = new CancellationTokenSource();
        var (cancelled, kept) = (Guid.NewGuid(), Guid.NewGuid());
        var giving = Place(scheduler, cancelled, cancellationToken: cancellation.Token);
        var staying = Place(scheduler, kept);
        await WaitForQueueAsync(scheduler, 2);
        await cancellation.CancelAsync();

        // Answered while the loop is still busy with the blocker: the caller does not wait for it.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => giving.WaitAsync(Patience));
        Assert.False(blocker.Placement.IsCompleted);
        await blocker.ReleaseAsync();
        Assert.True((await staying.WaitAsync(Patience)).Placed);

        Assert.Equal(0, await _db.ScalarAsync("SELECT count(*) FROM consumers WHERE id = $1", cancelled));
        Assert.Equal(0, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions WHERE consumer_id = $1", cancelled));
        Assert.Equal(2, await _db.ScalarAsync("SELECT count(*) FROM consumers"));
    }

    [Fact]
    public async Task A_refused_claim_decides_again_only_the_requests_on_the_refused_node()
    {
        var full = await _db.AddNodeAsync("n1", vcpus: 4, memoryMb: 65536);
        var other = await _db.AddNodeAsync("n2", vcpus: 8, memoryMb: 65536, zone: "az2");
        await _db.AddNodeAsync("n3", vcpus: 8, memoryMb: 65536);
        await _db.AddNodeAsync("n4", vcpus: 8, memoryMb: 65536, zone: "az3");
        // A long refresh interval: the view stays stale until the claim is refused.
        var scheduler = _db.NewReplica("pack", refreshInterval: TimeSpan.FromHours(1), claimLoops: 1);
        var blocker = await Blocker.StartAsync(scheduler, new PlacementConstraints { AvailabilityZone = "az3" });

        // Another replica fills n1 behind this one's back.
        var elsewhere = Guid.NewGuid();
        await using (var connection = await _db.DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            var claim = new Claim(elsewhere, ConsumerKinds.Vm, SchedulerReplicas.Project, full, Claim.AnyGeneration,
                new Dictionary<string, long> { ["VCPU"] = 4, ["MEMORY_MB"] = 512 });
            Assert.True((await _db.Ledger.TryClaimAsync([claim], transaction, CancellationToken.None)).Succeeded);
            await SchedulerReplicas.InsertVmsAsync(transaction, [(elsewhere, full)]);
            await transaction.CommitAsync();
        }

        var (unaffected, affected) = (Guid.NewGuid(), Guid.NewGuid());
        var onOther = Place(scheduler, unaffected, constraints: new PlacementConstraints { AvailabilityZone = "az2" });
        // Pack prefers the smaller n1, which the stale view still shows empty.
        var onFull = Place(scheduler, affected, constraints: new PlacementConstraints { AvailabilityZone = "az1" });
        await WaitForQueueAsync(scheduler, 2);
        await blocker.ReleaseAsync();

        var first = await onOther.WaitAsync(Patience);
        var second = await onFull.WaitAsync(Patience);
        Assert.Equal(other, first.Node!.NodeId);
        Assert.Equal("n3", second.Node!.Name);
        Assert.Equal(1, await _db.ScalarAsync("SELECT attempts FROM placement_decisions WHERE consumer_id = $1", unaffected));
        Assert.Equal(2, await _db.ScalarAsync("SELECT attempts FROM placement_decisions WHERE consumer_id = $1", affected));
        Assert.Equal(1, await TransactionsOfAsync([unaffected, affected]));
        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
    }

    [Fact]
    public async Task Once_the_claim_loop_has_stopped_each_request_is_placed_alone()
    {
        await _db.AddNodeAsync("n1", vcpus: 8, memoryMb: 65536);
        var scheduler = _db.NewReplica(claimLoops: 1);
        Assert.True((await Place(scheduler, Guid.NewGuid()).WaitAsync(Patience)).Placed);

        await _db.StopClaimLoopsAsync();
        var vms = new[] { Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid() };
        var results = await Task.WhenAll(vms.Select(vm => Place(scheduler, vm))).WaitAsync(Patience);

        Assert.All(results, r => Assert.True(r.Placed));
        Assert.Equal(0, scheduler.QueuedPlacements);
        Assert.Equal(3, await TransactionsOfAsync(vms));
        Assert.Equal(4, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions WHERE outcome = 'placed'"));
    }

    /// <summary>One node of 8 vCPUs, and a replica whose only claim loop is held by a blocker.</summary>
    private async Task<(Scheduler Scheduler, Blocker Blocker)> OneNodeAndABusyLoopAsync()
    {
        await _db.AddNodeAsync("n1", vcpus: 8, memoryMb: 65536);
        var scheduler = _db.NewReplica(claimLoops: 1);
        return (scheduler, await Blocker.StartAsync(scheduler));
    }

    /// <summary>The vCPUs claimed in all, and no broken invariant.</summary>
    private async Task AssertLedgerAsync(long vcpusUsed)
    {
        Assert.Equal(vcpusUsed, await _db.ScalarAsync("SELECT coalesce(sum(used), 0) FROM allocations WHERE resource_class = 'VCPU'"));
        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
    }

    private async Task<string> DecisionOutcomeAsync(Guid consumer)
    {
        await using var command = _db.DataSource.CreateCommand("SELECT outcome FROM placement_decisions WHERE consumer_id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = consumer });
        return (string)(await command.ExecuteScalarAsync())!;
    }
}
