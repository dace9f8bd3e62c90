using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>Explainable placement and the operator's placement API, through the real controller on both wires.</summary>
[Collection(CloudCollection.Name)]
public sealed class PlacementApiTests(CloudFixture cloud) : IDisposable
{
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    public void Dispose() => _channel.Dispose();

    private static CallOptions Authorized(string token = CloudFixture.OperatorToken)
        => new(new Metadata { { "authorization", "Bearer " + token } }, DateTime.UtcNow.AddSeconds(30));

    private async Task<string> CreateVmAsync(string name, string labelsJson)
    {
        var (status, operation) = await cloud.Http.PostAsync("/v1/vms", $$"""{"name":"{{name}}","flavor":"m1.tiny","labels":{{labelsJson}}}""");
        Assert.Equal(HttpStatusCode.Accepted, status);
        return operation.Str("id");
    }

    private async Task DeleteVmAsync(string vmId)
    {
        var (_, deletion) = await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/vms/{vmId}");
        Assert.Equal("SUCCEEDED", (await cloud.Http.WaitForOperationAsync(deletion.Str("id"))).Str("state"));
    }

    [Fact]
    public async Task Dry_run_says_where_a_vm_would_go_and_why_not_elsewhere_and_claims_nothing()
    {
        var (status, answer) = await cloud.Http.PostAsync("/v1/placement/dry-run", """{"spec":{"vcpus":1,"memoryMb":"512"},"explainNode":"test-node-1"}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(answer.GetProperty("placeable").GetBoolean());
        Assert.StartsWith("test-node-", answer.Str("node"), StringComparison.Ordinal);
        Assert.Equal(2, answer.GetProperty("nodesConsidered").GetInt32());
        var explanation = answer.GetProperty("explanation");
        Assert.Equal("test-node-1", explanation.Str("node"));
        Assert.True(explanation.GetProperty("eligible").GetBoolean());
        Assert.Contains(explanation.GetProperty("checks").EnumerateArray(), c => c.Str("filter") == "resource-fit" && c.GetProperty("passed").GetBoolean());
        // Other tests' VMs come and go meanwhile; a claim by the dry run would be a consumer with no VM.
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM consumers AS c WHERE NOT EXISTS (SELECT 1 FROM vms AS v WHERE v.id = c.id)"));

        var (decisionStatus, decision) = await cloud.Http.GetJsonAsync($"/v1/placement/decisions/{answer.Str("decisionId")}");
        Assert.Equal(HttpStatusCode.OK, decisionStatus);
        Assert.Equal("dry-run", decision.Str("kind"));
    }

    [Fact]
    public async Task Dry_run_that_fits_nowhere_counts_each_filters_rejections_and_names_the_nearest_miss()
    {
        var (status, answer) = await cloud.Http.PostAsync("/v1/placement/dry-run", """{"spec":{"vcpus":2,"memoryMb":"65536","requiredTraits":["GPU"]}}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.False(answer.GetProperty("placeable").GetBoolean());
        var rejection = Assert.Single(answer.GetProperty("rejections").EnumerateArray());
        Assert.Equal("traits", rejection.Str("filter"));
        Assert.Equal(2, rejection.GetProperty("nodes").GetInt32());
        Assert.Contains("lacks required trait GPU", answer.Str("nearestMiss"), StringComparison.Ordinal);
        Assert.Contains("2 rejected by traits", answer.Str("summary"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_decisions_request_and_rejections_read_back_through_the_api_as_recorded()
    {
        var (_, answer) = await cloud.Http.PostAsync("/v1/placement/dry-run", """{"spec":{"vcpus":2,"memoryMb":"65536","requiredTraits":["GPU"],"forbiddenTraits":["SLOW"]}}""");
        var decisionId = answer.Str("decisionId");

        var (status, decision) = await cloud.Http.GetJsonAsync($"/v1/placement/decisions/{decisionId}");
        var (_, list) = await cloud.Http.GetJsonAsync("/v1/placement/decisions?page_size=1000");

        Assert.Equal(HttpStatusCode.OK, status);
        var stored = (string)(await cloud.QueryAsync("SELECT request::text FROM placement_decisions WHERE id = @id", ("id", Guid.Parse(decisionId))))!;
        Assert.Equal(stored, decision.Str("requestJson"));
        var listed = Assert.Single(list.GetProperty("decisions").EnumerateArray(), d => d.Str("id") == decisionId);
        Assert.Equal(stored, listed.Str("requestJson"));
        var expected = JsonNode.Parse("""
            {"vcpus":2,"memoryMb":65536,"diskGb":0,"availabilityZone":null,"aggregate":null,"hypervisor":null,
             "requiredTraits":["GPU"],"forbiddenTraits":["SLOW"],"serverGroupId":null}
            """);
        Assert.True(JsonNode.DeepEquals(expected, JsonNode.Parse(decision.Str("requestJson"))), decision.Str("requestJson"));
        // The rejections as the dry run counted them, and as the row holds them.
        var counted = answer.GetProperty("rejections").EnumerateArray().Select(r => (r.Str("filter"), r.GetProperty("nodes").GetInt32())).ToList();
        Assert.NotEmpty(counted);
        Assert.Equal(counted, decision.GetProperty("rejections").EnumerateArray().Select(r => (r.Str("filter"), r.GetProperty("nodes").GetInt32())).ToList());
        var row = JsonSerializer.Deserialize<Dictionary<string, int>>((string)(await cloud.QueryAsync("SELECT rejections::text FROM placement_decisions WHERE id = @id", ("id", Guid.Parse(decisionId))))!)!;
        Assert.Equal(counted.OrderBy(c => c.Item1, StringComparer.Ordinal), row.Select(kv => (kv.Key, kv.Value)).OrderBy(c => c.Item1, StringComparer.Ordinal));
    }

    [Fact]
    public async Task Dry_run_bad_input_is_refused_with_a_clear_error()
    {
        var (both, bothBody) = await cloud.Http.PostAsync("/v1/placement/dry-run", """{"spec":{"flavor":"m1.tiny","vcpus":2}}""");
        var (trait, traitBody) = await cloud.Http.PostAsync("/v1/placement/dry-run", """{"spec":{"vcpus":1,"memoryMb":"512","requiredTraits":["ssd"]}}""");
        var (node, nodeBody) = await cloud.Http.PostAsync("/v1/placement/dry-run", """{"spec":{"flavor":"m1.tiny"},"explainNode":"nope"}""");
        var (zero, _) = await cloud.Http.PostAsync("/v1/placement/dry-run", """{"spec":{"vcpus":0,"memoryMb":"512"}}""");

        Assert.Equal(HttpStatusCode.BadRequest, both);
        Assert.Contains("not both", bothBody.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, trait);
        Assert.Contains("names trait 'ssd'", traitBody.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, node);
        Assert.Contains("Node 'nope'", nodeBody.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, zero);
    }

    [Fact]
    public async Task A_vm_that_cannot_be_placed_has_its_decision_readable_by_vm_id()
    {
        var operationId = await CreateVmAsync("nowhere", """{"placement.cloud/zone":"az-none"}""");
        var done = await cloud.Http.WaitForOperationAsync(operationId);
        Assert.Equal("FAILED", done.Str("state"));
        Assert.Equal("RESOURCE_EXHAUSTED", done.Str("errorCode"));
        var vmId = done.Str("targetId");

        var (status, list) = await cloud.Http.GetJsonAsync($"/v1/placement/decisions?consumer_id={vmId}");

        Assert.Equal(HttpStatusCode.OK, status);
        var decision = Assert.Single(list.GetProperty("decisions").EnumerateArray());
        Assert.Equal("failed", decision.Str("outcome"));
        var rejection = Assert.Single(decision.GetProperty("rejections").EnumerateArray());
        Assert.Equal("availability-zone", rejection.Str("filter"));
        Assert.Equal(2, rejection.GetProperty("nodes").GetInt32());
        Assert.Equal("az-none", JsonDocument.Parse(decision.Str("requestJson")).RootElement.Str("availabilityZone"));
    }

    /// <summary>
    /// One VM and a batch share one validation: a bad placement hint is refused up front, with the
    /// same code and message on both paths and both wires, before any operation or VM row exists.
    /// </summary>
    [Theory]
    [InlineData("placement.cloud/colour", "red", "is not a placement hint")]
    [InlineData("placement.cloud/zone", "AZ 1", "must be a name")]
    [InlineData("placement.cloud/require-traits", "lower", "names trait 'lower'")]
    [InlineData("placement.cloud/server-group", "not-a-guid", "must be a server group's id")]
    public async Task A_bad_placement_hint_is_refused_alike_by_single_and_batch_creates_and_writes_nothing(string key, string value, string expected)
    {
        using var tenant = await cloud.CreateTenantAsync("badhint");
        var labels = new JsonObject { [key] = value }.ToJsonString();
        var compute = new Compute.ComputeClient(_channel);
        var before = await cloud.CountsAsync(tenant.Id);

        var (single, singleProblem) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"hinted","flavor":"{{Tenancy.Nano}}","labels":{{labels}}}""");
        var (batch, batchProblem) = await tenant.Member.PostAsync("/v1/vms/batch", $$"""{"namePrefix":"hinted","flavor":"{{Tenancy.Nano}}","count":2,"labels":{{labels}}}""");
        var singleGrpc = await Assert.ThrowsAsync<RpcException>(() => compute.CreateVmAsync(
            new CreateVmRequest { Name = "hinted", Flavor = Tenancy.Nano, Labels = { [key] = value } }, Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);
        var batchGrpc = await Assert.ThrowsAsync<RpcException>(() => compute.CreateVmsAsync(
            new CreateVmsRequest { NamePrefix = "hinted", Flavor = Tenancy.Nano, Count = 2, Labels = { [key] = value } }, Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);

        Assert.Equal((HttpStatusCode.BadRequest, "INVALID_ARGUMENT"), (single, singleProblem.Str("code")));
        Assert.Equal((HttpStatusCode.BadRequest, "INVALID_ARGUMENT"), (batch, batchProblem.Str("code")));
        Assert.Contains(expected, singleProblem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(singleProblem.Str("detail"), batchProblem.Str("detail"));
        Assert.Equal((StatusCode.InvalidArgument, singleProblem.Str("detail")), (singleGrpc.StatusCode, singleGrpc.Status.Detail));
        Assert.Equal((StatusCode.InvalidArgument, singleProblem.Str("detail")), (batchGrpc.StatusCode, batchGrpc.Status.Detail));
        Assert.Equal(before, await cloud.CountsAsync(tenant.Id));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p", ("p", tenant.Id)));
    }

    [Fact]
    public async Task Anti_affinity_group_spreads_its_members_and_refuses_one_past_its_limit()
    {
        var (created, group) = await cloud.Http.PostAsync("/v1/server-groups", """{"name":"web-anti","policy":"anti-affinity","maxMembers":2}""");
        Assert.Equal(HttpStatusCode.Created, created);
        var groupId = group.Str("id");
        var labels = $$"""{"placement.cloud/server-group":"{{groupId}}"}""";

        var first = await cloud.Http.WaitForOperationAsync(await CreateVmAsync("anti-1", labels));
        var second = await cloud.Http.WaitForOperationAsync(await CreateVmAsync("anti-2", labels));
        var third = await cloud.Http.WaitForOperationAsync(await CreateVmAsync("anti-3", labels));

        Assert.Equal("SUCCEEDED", first.Str("state"));
        Assert.Equal("SUCCEEDED", second.Str("state"));
        var (_, vm1) = await cloud.Http.GetJsonAsync($"/v1/vms/{first.Str("targetId")}");
        var (_, vm2) = await cloud.Http.GetJsonAsync($"/v1/vms/{second.Str("targetId")}");
        Assert.NotEqual(vm1.Str("node"), vm2.Str("node"));
        Assert.Equal("FAILED", third.Str("state"));
        Assert.Contains("server group web-anti is full (2 of 2 members)", third.Str("errorMessage"), StringComparison.Ordinal);

        var (_, fetched) = await cloud.Http.GetJsonAsync($"/v1/server-groups/{groupId}");
        Assert.Equal(2, fetched.GetProperty("memberIds").GetArrayLength());
        var (refused, problem) = await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/server-groups/{groupId}");
        Assert.Equal(HttpStatusCode.BadRequest, refused);
        Assert.Equal("FAILED_PRECONDITION", problem.Str("code"));

        await DeleteVmAsync(first.Str("targetId"));
        await DeleteVmAsync(second.Str("targetId"));
        var (deleted, _) = await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/server-groups/{groupId}");
        Assert.Equal(HttpStatusCode.NoContent, deleted);
    }

    [Fact]
    public async Task Server_group_bad_input_is_refused_and_creates_nothing()
    {
        var before = await cloud.ScalarAsync("SELECT count(*) FROM server_groups");

        var (policy, policyBody) = await cloud.Http.PostAsync("/v1/server-groups", """{"name":"g","policy":"sideways"}""");
        var (name, _) = await cloud.Http.PostAsync("/v1/server-groups", """{"name":"Bad Name","policy":"affinity"}""");
        var (limit, limitBody) = await cloud.Http.PostAsync("/v1/server-groups", """{"name":"g","policy":"affinity","maxMembers":-1}""");
        var (unknown, _) = await cloud.Http.PostAsync("/v1/server-groups", """{"name":"g","policy":"affinity","colour":"red"}""");
        var (missing, _) = await cloud.Http.GetJsonAsync($"/v1/server-groups/{Guid.NewGuid()}");
        var (badId, _) = await cloud.Http.GetJsonAsync("/v1/server-groups/not-an-id");

        Assert.Equal(HttpStatusCode.BadRequest, policy);
        Assert.Contains("one of affinity, anti-affinity, soft-affinity, soft-anti-affinity", policyBody.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, name);
        Assert.Equal(HttpStatusCode.BadRequest, limit);
        Assert.Contains("max_members", limitBody.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, unknown);
        Assert.Equal(HttpStatusCode.NotFound, missing);
        Assert.Equal(HttpStatusCode.BadRequest, badId);
        Assert.Equal(before, await cloud.ScalarAsync("SELECT count(*) FROM server_groups"));

        var (first, _) = await cloud.Http.PostAsync("/v1/server-groups", """{"name":"twice","policy":"soft-affinity"}""");
        var (again, _) = await cloud.Http.PostAsync("/v1/server-groups", """{"name":"twice","policy":"affinity"}""");
        Assert.Equal(HttpStatusCode.Created, first);
        Assert.Equal(HttpStatusCode.Conflict, again);
        Assert.Equal("soft-affinity", (await cloud.Http.GetJsonAsync("/v1/server-groups")).Body.GetProperty("serverGroups").EnumerateArray().Single(g => g.Str("name") == "twice").Str("policy"));
    }

    [Fact]
    public async Task Aggregates_steer_placement_and_draw_zones_and_bad_changes_are_refused()
    {
        const string Generation = "SELECT generation FROM nodes WHERE name = 'test-node-2'";
        var (created, _) = await cloud.Http.PostAsync("/v1/aggregates", """{"name":"fast-hosts","availabilityZone":"zone-fast"}""");
        Assert.Equal(HttpStatusCode.Created, created);
        var generationBefore = await cloud.ScalarAsync(Generation);
        var (added, aggregate) = await cloud.Http.SendAsync(HttpMethod.Put, "/v1/aggregates/fast-hosts/nodes/test-node-2");
        Assert.Equal(HttpStatusCode.OK, added);
        // Its zone changed: the bump is what makes every replica reload the node at its next check.
        Assert.Equal(generationBefore + 1, await cloud.ScalarAsync(Generation));
        Assert.Equal(["test-node-2"], aggregate.GetProperty("nodes").EnumerateArray().Select(n => n.GetString()));
        try
        {
            var (_, answer) = await cloud.Http.PostAsync("/v1/placement/dry-run", """{"spec":{"flavor":"m1.tiny","aggregate":"fast-hosts"}}""");
            Assert.Equal("test-node-2", answer.Str("node"));
            var (_, zoned) = await cloud.Http.PostAsync("/v1/placement/dry-run", """{"spec":{"flavor":"m1.tiny","availabilityZone":"zone-fast"}}""");
            Assert.Equal("test-node-2", zoned.Str("node"));
            var (_, zones) = await cloud.Http.GetJsonAsync("/v1/availability-zones");
            Assert.Equal(1, zones.GetProperty("zones").EnumerateArray().Single(z => z.Str("name") == "zone-fast").GetProperty("nodes").GetInt32());

            var (duplicate, _) = await cloud.Http.PostAsync("/v1/aggregates", """{"name":"fast-hosts"}""");
            var (badZone, _) = await cloud.Http.PostAsync("/v1/aggregates", """{"name":"x","availabilityZone":"Zone 1"}""");
            var (unknownNode, _) = await cloud.Http.SendAsync(HttpMethod.Put, "/v1/aggregates/fast-hosts/nodes/no-such-node");
            var (clash, clashBody) = await PutInOtherZoneAsync();
            var (notEmpty, _) = await cloud.Http.SendAsync(HttpMethod.Delete, "/v1/aggregates/fast-hosts");
            Assert.Equal(HttpStatusCode.Conflict, duplicate);
            Assert.Equal(HttpStatusCode.BadRequest, badZone);
            Assert.Equal(HttpStatusCode.NotFound, unknownNode);
            Assert.Equal(HttpStatusCode.BadRequest, clash);
            Assert.Contains("cannot also be in zone 'zone-slow'", clashBody.Str("detail"), StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.BadRequest, notEmpty);
            Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM aggregate_nodes"));
        }
        finally
        {
            await cloud.Http.SendAsync(HttpMethod.Delete, "/v1/aggregates/fast-hosts/nodes/test-node-2");
        }
        Assert.Equal(generationBefore + 2, await cloud.ScalarAsync(Generation));
        var (deleted, _) = await cloud.Http.SendAsync(HttpMethod.Delete, "/v1/aggregates/fast-hosts");
        Assert.Equal(HttpStatusCode.NoContent, deleted);
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM aggregates WHERE name = 'fast-hosts'"));
    }

    private async Task<(HttpStatusCode, JsonElement)> PutInOtherZoneAsync()
    {
        await cloud.Http.PostAsync("/v1/aggregates", """{"name":"slow-hosts","availabilityZone":"zone-slow"}""");
        return await cloud.Http.SendAsync(HttpMethod.Put, "/v1/aggregates/slow-hosts/nodes/test-node-2");
    }

    [Fact]
    public async Task The_placement_service_answers_over_grpc_with_the_same_codes()
    {
        var placement = new Cloud.Contracts.Compute.V1.Placement.PlacementClient(_channel);

        var answer = await placement.DryRunAsync(new DryRunRequest { Spec = new PlacementSpec { Flavor = "m1.tiny" }, ExplainNode = "test-node-2" }, Authorized());
        var group = await placement.CreateServerGroupAsync(new CreateServerGroupRequest { Name = "grpc-group", Policy = "soft-anti-affinity" }, Authorized());
        var invalid = await Assert.ThrowsAsync<RpcException>(() => placement.CreateServerGroupAsync(new CreateServerGroupRequest { Name = "x", Policy = "nope" }, Authorized()).ResponseAsync);
        var anonymous = await Assert.ThrowsAsync<RpcException>(() => placement.ListAggregatesAsync(new ListAggregatesRequest(), Authorized("wrong")).ResponseAsync);
        var decision = await placement.GetPlacementDecisionAsync(new GetPlacementDecisionRequest { Id = answer.DecisionId }, Authorized());

        Assert.True(answer.Placeable);
        Assert.Equal("test-node-2", answer.Explanation.Node);
        Assert.Equal(10, group.MaxMembers);
        Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);
        Assert.Equal(StatusCode.Unauthenticated, anonymous.StatusCode);
        Assert.Equal("dry-run", decision.Kind);
        Assert.Equal(answer.Node, decision.Node);
        var zones = await placement.ListAvailabilityZonesAsync(new ListAvailabilityZonesRequest(), Authorized());
        Assert.Contains(zones.Zones, z => z.Name == "zone-a" && z.NodesUp >= 1);
    }
}
