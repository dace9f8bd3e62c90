using System.Text.Json;
using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>The scheduler against a real PostgreSQL: batches, server groups, recorded decisions, racing replicas.</summary>
public sealed class SchedulerLedgerTests : IAsyncLifetime
{
    private SchedulerReplicas _db = null!;

    public async Task InitializeAsync() => _db = await SchedulerReplicas.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    private static Task InsertVms(Npgsql.NpgsqlTransaction transaction, IReadOnlyList<BatchAssignment> placed, CancellationToken _)
        => SchedulerReplicas.InsertVmsAsync(transaction, placed.Select(p => (p.Item.ConsumerId, p.Node.NodeId)));

    private Task<long> AllocationsAsync() => _db.ScalarAsync("SELECT count(*) FROM allocations");

    [Fact]
    public async Task Batch_that_fits_is_claimed_in_one_transaction_with_one_generation_bump_per_node()
    {
        var nodes = new[] { await _db.AddNodeAsync("n1"), await _db.AddNodeAsync("n2"), await _db.AddNodeAsync("n3") };
        var scheduler = _db.NewReplica("pack");
        var items = Enumerable.Range(0, 12).Select(_ => SchedulerReplicas.Item()).ToList();

        var result = await scheduler.PlaceBatchAsync(items, minimum: 12, InsertVms, CancellationToken.None);

        Assert.Equal(12, result.Placed.Count);
        Assert.Empty(result.Unplaced);
        Assert.Equal(1, result.Attempts);
        foreach (var node in nodes)
        {
            Assert.Equal(1, await _db.ScalarAsync("SELECT generation FROM nodes WHERE id = $1", node));
        }
        Assert.Equal(12, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions WHERE kind = 'batch' AND outcome = 'placed'"));
        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
    }

    [Fact]
    public async Task Batch_below_its_minimum_places_nothing_and_records_why()
    {
        await _db.AddNodeAsync("n1");
        await _db.AddNodeAsync("n2");
        var scheduler = _db.NewReplica();
        var items = Enumerable.Range(0, 10).Select(_ => SchedulerReplicas.Item()).ToList();

        var result = await scheduler.PlaceBatchAsync(items, minimum: 10, InsertVms, CancellationToken.None);

        Assert.Empty(result.Placed);
        Assert.Equal(10, result.Unplaced.Count);
        Assert.StartsWith("Only 8 of 10 VMs fit, fewer than the minimum of 10", result.Unplaced[0].Failure.Summary, StringComparison.Ordinal);
        Assert.Equal(0, await AllocationsAsync());
        Assert.Equal(0, await _db.ScalarAsync("SELECT count(*) FROM vms"));
        Assert.Equal(10, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions WHERE outcome = 'failed'"));
    }

    [Fact]
    public async Task Batch_with_a_minimum_places_what_fits_and_explains_the_rest()
    {
        await _db.AddNodeAsync("n1");
        await _db.AddNodeAsync("n2");
        var scheduler = _db.NewReplica();
        var items = Enumerable.Range(0, 10).Select(_ => SchedulerReplicas.Item()).ToList();

        var result = await scheduler.PlaceBatchAsync(items, minimum: 5, InsertVms, CancellationToken.None);

        Assert.Equal(8, result.Placed.Count);
        Assert.Equal(2, result.Unplaced.Count);
        Assert.Equal(2, result.Unplaced[0].Failure.RejectedByFilter["resource-fit"]);
        Assert.Equal(8, await _db.ScalarAsync("SELECT count(DISTINCT consumer_id) FROM allocations"));
        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
    }

    [Fact]
    public async Task Batch_of_an_anti_affinity_group_puts_one_member_per_node()
    {
        for (var i = 1; i <= 3; i++)
        {
            await _db.AddNodeAsync($"n{i}");
        }
        var group = await _db.AddGroupAsync("web", ServerGroupPolicies.AntiAffinity);
        var scheduler = _db.NewReplica("pack");
        var constraints = new PlacementConstraints { ServerGroupId = group };
        var items = Enumerable.Range(0, 5).Select(_ => SchedulerReplicas.Item(constraints: constraints)).ToList();

        var result = await scheduler.PlaceBatchAsync(items, minimum: 1, InsertVms, CancellationToken.None);

        Assert.Equal(3, result.Placed.Select(p => p.Node.NodeId).Distinct().Count());
        Assert.Equal(3, result.Placed.Count);
        Assert.All(result.Unplaced, u => Assert.Equal(3, u.Failure.RejectedByFilter["server-group"]));
        Assert.Equal(3, await _db.ScalarAsync("SELECT count(*) FROM server_group_members WHERE group_id = $1", group));
    }

    [Fact]
    public async Task Affinity_members_follow_the_first_and_leave_the_group_when_released()
    {
        await _db.AddNodeAsync("n1");
        await _db.AddNodeAsync("n2");
        var group = await _db.AddGroupAsync("db", ServerGroupPolicies.Affinity, maxMembers: 2);
        var scheduler = _db.NewReplica("spread");
        var request = new PlacementRequest(new ResourceRequest(1, 512, 0), new PlacementConstraints { ServerGroupId = group });
        var nodes = new List<Guid>();
        var vms = new List<Guid>();
        for (var i = 0; i < 3; i++)
        {
            var vm = Guid.NewGuid();
            var result = await scheduler.PlaceAsync(vm, SchedulerReplicas.Project, request,
                (tx, node, ct) => SchedulerReplicas.InsertVmsAsync(tx, [(vm, node.NodeId)]), CancellationToken.None);
            if (i < 2)
            {
                nodes.Add(result.Node!.NodeId);
                vms.Add(vm);
            }
            else
            {
                Assert.False(result.Placed);
                Assert.Contains("server group db is full (2 of 2 members)", result.Failure!.Summary, StringComparison.Ordinal);
            }
        }
        Assert.Single(nodes.Distinct());

        await using (var connection = await _db.DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await scheduler.ReleaseAsync(vms[0], nodes[0], transaction, CancellationToken.None);
            await transaction.CommitAsync();
        }
        Assert.Equal(1, await _db.ScalarAsync("SELECT count(*) FROM server_group_members WHERE group_id = $1", group));
    }

    [Fact]
    public async Task Every_decision_is_recorded_with_its_reasons()
    {
        await _db.AddNodeAsync("small", vcpus: 2);
        await _db.AddNodeAsync("other-zone", zone: "az2");
        var scheduler = _db.NewReplica();
        var vm = Guid.NewGuid();
        var request = new PlacementRequest(new ResourceRequest(4, 512, 0), new PlacementConstraints { AvailabilityZone = "az1" });

        var result = await scheduler.PlaceAsync(vm, SchedulerReplicas.Project, request, (_, _, _) => Task.CompletedTask, CancellationToken.None);

        Assert.False(result.Placed);
        await using var command = _db.DataSource.CreateCommand("SELECT outcome, nodes_considered, rejections::text, nearest_miss, request->>'availabilityZone' FROM placement_decisions WHERE id = $1");
        command.Parameters.Add(new Npgsql.NpgsqlParameter { Value = result.DecisionId });
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal("failed", reader.GetString(0));
        Assert.Equal(2, reader.GetInt32(1));
        var rejections = JsonSerializer.Deserialize<Dictionary<string, int>>(reader.GetString(2))!;
        Assert.Equal(1, rejections["availability-zone"]);
        Assert.Equal(1, rejections["resource-fit"]);
        Assert.Equal("node small takes VCPU in units of 1 between 1 and 2, not 4", reader.GetString(3));
        Assert.Equal("az1", reader.GetString(4));
    }

    [Fact]
    public async Task Two_replicas_racing_for_the_last_capacity_never_overcommit()
    {
        for (var i = 1; i <= 4; i++)
        {
            await _db.AddNodeAsync($"n{i}", vcpus: 4, memoryMb: 8192);
        }
        var replicas = new[] { _db.NewReplica("pack"), _db.NewReplica("pack") };
        // 16 vCPUs in all, 40 asked for: each replica's view goes stale as the other claims.
        var tasks = Enumerable.Range(0, 40).Select(i => Task.Run(async () =>
        {
            var vm = Guid.NewGuid();
            return await replicas[i % 2].PlaceAsync(vm, SchedulerReplicas.Project, new ResourceRequest(1, 512, 0),
                (tx, node, ct) => SchedulerReplicas.InsertVmsAsync(tx, [(vm, node.NodeId)]), CancellationToken.None);
        })).ToList();
        var results = await Task.WhenAll(tasks);

        Assert.Equal(16, results.Count(r => r.Placed));
        Assert.Equal(16, await _db.ScalarAsync("SELECT coalesce(sum(used), 0) FROM allocations WHERE resource_class = 'VCPU'"));
        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
        Assert.Equal(40, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions"));
    }

    [Fact]
    public async Task Dry_run_answers_where_and_why_not_there_and_claims_nothing()
    {
        await _db.AddNodeAsync("fits", vcpus: 8);
        await _db.AddNodeAsync("tiny", vcpus: 1);
        var scheduler = _db.NewReplica();

        var answer = await scheduler.DryRunAsync(SchedulerReplicas.Project, new PlacementRequest(new ResourceRequest(2, 512, 0)), "tiny", CancellationToken.None);

        Assert.Equal("fits", answer.Outcome.Node!.Name);
        Assert.False(answer.Explanation!.Eligible);
        Assert.Equal("node tiny takes VCPU in units of 1 between 1 and 1, not 2", answer.Explanation.Checks.Single(c => c.Filter == "resource-fit").Rejection);
        Assert.Equal(0, await AllocationsAsync());
        Assert.Equal(1, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions WHERE kind = 'dry-run' AND consumer_id IS NULL"));
    }

    [Fact]
    public async Task Bad_batches_are_refused_before_anything_is_written()
    {
        await _db.AddNodeAsync("n1");
        var scheduler = _db.NewReplica();
        var item = SchedulerReplicas.Item();

        await Assert.ThrowsAsync<ArgumentException>(() => scheduler.PlaceBatchAsync([], 1, null, CancellationToken.None));
        var minimum = await Assert.ThrowsAsync<ArgumentException>(() => scheduler.PlaceBatchAsync([item], 2, null, CancellationToken.None));
        var twice = await Assert.ThrowsAsync<ArgumentException>(() => scheduler.PlaceBatchAsync([item, item], 1, null, CancellationToken.None));

        Assert.Contains("minimum must be between 1 and the batch's size 1", minimum.Message, StringComparison.Ordinal);
        Assert.Contains("names each VM once", twice.Message, StringComparison.Ordinal);
        Assert.Equal(0, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions"));
    }

    [Fact]
    public async Task Decisions_older_than_the_retention_are_deleted_and_newer_ones_kept()
    {
        await _db.AddNodeAsync("n1");
        var scheduler = _db.NewReplica();
        await scheduler.PlaceBatchAsync([SchedulerReplicas.Item(), SchedulerReplicas.Item()], 1, InsertVms, CancellationToken.None);
        await _db.ExecuteAsync("UPDATE placement_decisions SET created_at = now() - interval '8 days' WHERE id = (SELECT id FROM placement_decisions ORDER BY id LIMIT 1)");

        var deleted = await _db.Janitor().PruneAsync(CancellationToken.None);

        Assert.Equal(1, deleted);
        Assert.Equal(1, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions"));
    }

    [Fact]
    public async Task Every_decision_past_the_retention_is_deleted_through_bursts_and_quiet_spells_and_none_inside_it()
    {
        // Past the 7 days kept: a burst of 30,000 in 1.5 s (several chunks), a day of quiet,
        // then one a minute for 500 minutes.
        await _db.ExecuteAsync("""
            INSERT INTO placement_decisions (id, project_id, kind, outcome, nodes_considered, rejections, summary, request, attempts, created_at)
            SELECT gen_random_uuid(), 'p', 'batch', 'placed', 1, '{}', 'old', '{}', 1, t
              FROM (SELECT now() - interval '9 days' + i * interval '50 microseconds' FROM generate_series(1, 30000) AS i
                    UNION ALL
                    SELECT now() - interval '8 days' + i * interval '1 minute' FROM generate_series(1, 500) AS i) AS old (t)
            """);
        // Inside the retention: just inside it, and recent.
        await _db.ExecuteAsync("""
            INSERT INTO placement_decisions (id, project_id, kind, outcome, nodes_considered, rejections, summary, request, attempts, created_at)
            SELECT gen_random_uuid(), 'p', 'batch', 'placed', 1, '{}', 'kept', '{}', 1, t
              FROM (SELECT now() - interval '7 days' + interval '1 minute' UNION ALL
                    SELECT now() - i * interval '1 second' FROM generate_series(0, 99) AS i) AS kept (t)
            """);

        var deleted = await _db.Janitor().PruneAsync(CancellationToken.None);

        Assert.Equal(30_500, deleted);
        Assert.Equal(0, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions WHERE summary = 'old'"));
        Assert.Equal(101, await _db.ScalarAsync("SELECT count(*) FROM placement_decisions WHERE summary = 'kept'"));
        Assert.Equal(0, await _db.Janitor().PruneAsync(CancellationToken.None));
    }
}
