using System.Net;
using System.Text.Json;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>
/// Operators drain a node (fake agents, two nodes): it is cordoned, its running VMs go where
/// the scheduler chooses, a VM that cannot go is named with the reason, and the operation's
/// result says what became of each.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class NodeDrainTests(CloudFixture cloud) : IDisposable
{
    private const string Drained = "test-node-1";
    private const string Other = "test-node-2";

    private readonly List<string> _files = [];

    [Fact]
    public async Task A_drain_moves_every_running_vm_off_the_node_and_leaves_it_cordoned()
    {
        using var tenant = await cloud.CreateTenantAsync("drain");
        var vmIds = await cloud.CreateRunningVmsOnFirstNodeAsync(tenant, "stopper", 3);
        var notRunningBefore = await NotRunningOnAsync(Drained);
        try
        {
            var operation = await cloud.Http.RunAsync(HttpMethod.Post, $"/v1/nodes/{Drained}/drain", """{"maxParallel":1}""");

            Assert.Equal("node.drain", operation.Str("kind"));
            var result = operation.GetProperty("drain");
            Assert.Equal(notRunningBefore, result.GetProperty("left").GetInt32());
            Assert.Equal(notRunningBefore == 0 ? "SUCCEEDED" : "FAILED", operation.Str("state"));
            foreach (var vmId in vmIds)
            {
                var entry = result.GetProperty("vms").EnumerateArray().Single(v => v.Str("id") == vmId);
                Assert.Equal("MOVED", entry.Str("outcome"));
                Assert.Equal(Other, entry.Str("node"));
                var (_, migration) = await cloud.Http.GetJsonAsync($"/v1/operations/{entry.Str("operation")}");
                Assert.Equal(("vm.migrate", "SUCCEEDED"), (migration.Str("kind"), migration.Str("state")));
                var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
                Assert.Equal((Other, "RUNNING"), (vm.Str("node"), vm.Str("state")));
            }
            Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM vms v JOIN nodes n ON n.id = v.node_id WHERE n.name = @n AND v.state = 'RUNNING'", ("n", Drained)));
            // One at a time: each migration started after the one before it ended.
            var migrations = result.GetProperty("vms").EnumerateArray()
                .Where(v => v.TryGetProperty("operation", out _)).Select(v => Guid.Parse(v.Str("operation"))).ToArray();
            Assert.True(migrations.Length >= vmIds.Length);
            Assert.Equal(0, await cloud.ScalarAsync("""
                SELECT count(*) FROM operations a JOIN operations b ON a.id <> b.id AND a.created_at < b.created_at
                 WHERE a.id = ANY(@ids) AND b.id = ANY(@ids) AND b.created_at < a.updated_at
                """, ("ids", migrations)));
            Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations a JOIN consumers c ON c.id = a.consumer_id WHERE c.kind = 'migration'"));
            Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM nodes WHERE name = @n AND schedulable", ("n", Drained)));
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{Drained}/uncordon", "{}")).Status);
        }
        await DeleteAsync(tenant, vmIds);
    }

    [Fact]
    public async Task A_stopped_vm_moves_stopped_and_one_that_fits_nowhere_else_stays_named()
    {
        using var tenant = await cloud.CreateTenantAsync("drainstop");
        var vmIds = await cloud.CreateRunningVmsOnFirstNodeAsync(tenant, "stopper", 2);
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmIds[0]}/stop", """{"force":true}""")).Str("state"));
        Assert.Equal(HttpStatusCode.Created, (await cloud.Http.PostAsync("/v1/aggregates", """{"name":"drain-pinned"}""")).Status);
        Assert.Equal(HttpStatusCode.OK, (await cloud.Http.SendAsync(HttpMethod.Put, $"/v1/aggregates/drain-pinned/nodes/{Drained}")).Status);
        var pinned = await tenant.Member.CreateRunningVmAsync("pinned", labels: """{"placement.cloud/aggregate":"drain-pinned"}""");
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken));
        try
        {
            var failure = await Assert.ThrowsAsync<Cloud.Cli.CliException>(() => Cloudctl.RunAsync(config, "node", "drain", Drained, "--parallel", "1"));

            Assert.StartsWith("node.drain failed: FAILED_PRECONDITION:", failure.Message, StringComparison.Ordinal);
            Assert.Contains("pinned (RESOURCE_EXHAUSTED: No node to migrate the VM to. No other node can take it:", failure.Message, StringComparison.Ordinal);
            var drainId = (string?)await cloud.QueryAsync("SELECT id::text FROM operations WHERE kind = 'node.drain' ORDER BY created_at DESC LIMIT 1");
            var (_, json) = await Cloudctl.RunAsync(config, "operation", "get", drainId!, "-o", "json");
            var vms = JsonDocument.Parse(json).RootElement.GetProperty("drain").GetProperty("vms").EnumerateArray().ToDictionary(v => v.Str("id"));
            Assert.Equal("LEFT", vms[pinned].Str("outcome"));
            foreach (var (vmId, state) in new[] { (vmIds[0], "STOPPED"), (vmIds[1], "RUNNING") })
            {
                Assert.Equal(("MOVED", Other), (vms[vmId].Str("outcome"), vms[vmId].Str("node")));
                var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
                Assert.Equal((Other, state), (vm.Str("node"), vm.Str("state")));
            }
            var (_, stayed) = await cloud.Http.GetJsonAsync($"/v1/vms/{pinned}");
            Assert.Equal((Drained, "RUNNING"), (stayed.Str("node"), stayed.Str("state")));
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{Drained}/uncordon", "{}")).Status);
            await DeleteAsync(tenant, [.. vmIds, pinned]);
            await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/aggregates/drain-pinned/nodes/{Drained}");
            Assert.Equal(HttpStatusCode.NoContent, (await cloud.Http.SendAsync(HttpMethod.Delete, "/v1/aggregates/drain-pinned")).Status);
        }
    }

    [Fact]
    public async Task A_drain_abandoned_by_a_stopped_replica_goes_on_from_its_recorded_result()
    {
        using var tenant = await cloud.CreateTenantAsync("drainresume");
        var vmIds = await cloud.CreateRunningVmsOnFirstNodeAsync(tenant, "stopper", 2);
        // What a controller killed mid-drain leaves: the node cordoned, the first VM's migration
        // started (and ended since), the drain RUNNING with its owner gone and the lease run out.
        var firstMigration = await cloud.Http.RunAsync(HttpMethod.Post, $"/v1/vms/{vmIds[0]}/migrate", "{}");
        Assert.Equal("SUCCEEDED", firstMigration.Str("state"));
        Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{Drained}/cordon", "{}")).Status);
        var notRunningBefore = await NotRunningOnAsync(Drained);
        var drainId = Guid.CreateVersion7();
        await cloud.ScalarAsync(
            """
            WITH o AS (INSERT INTO operations (id, project_id, kind, target_id, state, progress, created_at, updated_at, owner, lease_expires_at, request, result)
                       SELECT @id, 'admin', 'node.drain', n.id::text, 'RUNNING', 0, now(), now(), 'crashed-replica', now() - interval '1 minute',
                              '{"name":"' || n.name || '","maxParallel":1}', @result
                         FROM nodes n WHERE n.name = @node RETURNING 1)
            SELECT count(*) FROM o
            """,
            ("id", drainId), ("node", Drained),
            ("result", $$"""{"vms":[{"id":"{{vmIds[0]}}","name":"stopper-0","outcome":"MIGRATING","operation":"{{firstMigration.Str("id")}}"}]}"""));
        try
        {
            var done = await cloud.Http.WaitForOperationAsync(drainId.ToString());

            Assert.Equal("RESUMED", done.Str("recovery"));
            Assert.Equal(notRunningBefore == 0 ? "SUCCEEDED" : "FAILED", done.Str("state"));
            var vms = done.GetProperty("drain").GetProperty("vms").EnumerateArray().ToDictionary(v => v.Str("id"));
            Assert.Equal(("MOVED", Other, firstMigration.Str("id")), (vms[vmIds[0]].Str("outcome"), vms[vmIds[0]].Str("node"), vms[vmIds[0]].Str("operation")));
            Assert.Equal(("MOVED", Other), (vms[vmIds[1]].Str("outcome"), vms[vmIds[1]].Str("node")));
            // The first VM was not migrated a second time.
            Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM operations WHERE kind = 'vm.migrate' AND target_id = @vm", ("vm", vmIds[0])));
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{Drained}/uncordon", "{}")).Status);
        }
        await DeleteAsync(tenant, vmIds);
    }

    [Theory]
    [InlineData("operator", "/v1/nodes/no-such-node/drain", "{}", HttpStatusCode.NotFound, "Node 'no-such-node'")]
    [InlineData("operator", "/v1/nodes/Not_A_Node/drain", "{}", HttpStatusCode.BadRequest, "node 'Not_A_Node' is invalid")]
    [InlineData("operator", "/v1/nodes/test-node-1/drain", """{"maxParallel":17}""", HttpStatusCode.BadRequest, "max_parallel must be 1 to 16")]
    [InlineData("operator", "/v1/nodes/test-node-1/drain", """{"maxParallel":-1}""", HttpStatusCode.BadRequest, "max_parallel must be 1 to 16")]
    [InlineData("operator", "/v1/nodes/test-node-1/drain", """{"name":"test-node-2"}""", HttpStatusCode.BadRequest, "differs from the one in the path")]
    [InlineData("member", "/v1/nodes/test-node-1/drain", "{}", HttpStatusCode.Forbidden, "Only operators drain nodes")]
    public async Task Draining_is_for_operators_known_nodes_and_sane_parallelism(string role, string path, string body, HttpStatusCode expected, string detail)
    {
        using var tenant = await cloud.CreateTenantAsync("drainbad");
        var http = role == "operator" ? cloud.Http : tenant.Member;

        var (status, problem) = await http.PostAsync(path, body);

        Assert.Equal(expected, status);
        Assert.Contains(detail, problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(2, await cloud.ScalarAsync("SELECT count(*) FROM nodes WHERE schedulable"));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM operations WHERE kind = 'node.drain' AND state IN ('PENDING', 'RUNNING')"));
    }

    private async Task<int> NotRunningOnAsync(string node)
        => (int)await cloud.ScalarAsync("SELECT count(*) FROM vms v JOIN nodes n ON n.id = v.node_id WHERE n.name = @n AND v.state NOT IN ('RUNNING', 'DELETED')", ("n", node));

    private static async Task DeleteAsync(TestTenant tenant, IEnumerable<string> vmIds)
    {
        foreach (var vmId in vmIds)
        {
            Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        }
    }

    private string Track(string file)
    {
        _files.Add(file);
        return file;
    }

    public void Dispose()
    {
        foreach (var file in _files)
        {
            File.Delete(file);
        }
    }
}
