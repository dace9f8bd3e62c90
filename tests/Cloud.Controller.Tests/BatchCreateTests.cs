using System.Net;
using System.Text.Json;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Data;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;
using Npgsql;

namespace Cloud.Controller.Tests;

/// <summary>
/// Batch create on both wires: one vm.create_batch operation, the VMs placed in one pass and
/// claimed in one transaction with their quota, all or at least the minimum; a refused agent
/// costs its own VM only; bad or over-quota requests write nothing.
/// </summary>
[Collection(BatchCloudCollection.Name)]
public sealed class BatchCreateTests(BatchCloudFixture cloud)
{
    private const string Roomy = """{"instances":50,"vcpus":100,"memoryMb":"100000","diskGb":"1000","snapshots":0}""";

    /// <summary>A flavor of which a node of <see cref="BatchCloudFixture.NodeMemoryMb"/> takes two.</summary>
    private const string Large = "batch.large";
    private const long LargeMemoryMb = 1500;

    [Fact]
    public async Task A_batch_of_twenty_over_rest_is_one_operation_one_claim_and_one_charge()
    {
        using var tenant = await cloud.CreateTenantAsync("batch", Roomy);

        var (status, started) = await tenant.Member.PostAsync("/v1/vms/batch", $$"""{"namePrefix":"web","flavor":"{{Tenancy.Nano}}","count":20}""");

        Assert.True(status == HttpStatusCode.Accepted, started.ToString());
        Assert.Equal("vm.create_batch", started.Str("kind"));
        // The rows exist at once, listed in the operation, PENDING.
        Assert.Equal(20, started.GetProperty("batch").GetProperty("vms").GetArrayLength());
        Assert.Equal(20, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p", ("p", tenant.Id)));
        var done = await cloud.Http.WaitForOperationAsync(started.Str("id"));
        Assert.True(done.Str("state") == "SUCCEEDED", done.ToString());
        var batch = done.GetProperty("batch");
        Assert.Equal((20, 20, 20), (batch.GetProperty("placed").GetInt32(), batch.GetProperty("created").GetInt32(), batch.GetProperty("minimum").GetInt32()));
        Assert.All(batch.GetProperty("vms").EnumerateArray(), v => Assert.True(v.Str("state") == "RUNNING" && v.Str("node").StartsWith("test-node-", StringComparison.Ordinal), v.ToString()));
        Assert.Equal(Enumerable.Range(1, 20).Select(i => $"web-{i}").Order(), batch.GetProperty("vms").EnumerateArray().Select(v => v.Str("name")).Order());
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM operations WHERE project_id = @p", ("p", tenant.Id)));

        Assert.Equal(20, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p AND state = 'RUNNING' AND node_id IS NOT NULL", ("p", tenant.Id)));
        Assert.Equal(20, await cloud.ScalarAsync("SELECT count(*) FROM consumers WHERE project_id = @p", ("p", tenant.Id)));
        Assert.Equal(20, await cloud.ScalarAsync(
            "SELECT count(*) FROM placement_decisions d JOIN vms v ON v.id = d.consumer_id WHERE v.project_id = @p AND d.kind = 'batch' AND d.outcome = 'placed'", ("p", tenant.Id)));
        // One claim transaction: every consumer, allocation and VM row's node came from the same one.
        Assert.Equal(1, await cloud.ScalarAsync(
            """
            SELECT count(DISTINCT x) FROM (
              SELECT c.xmin::text AS x FROM consumers c WHERE c.project_id = @p
              UNION ALL SELECT a.xmin::text FROM allocations a JOIN consumers c ON c.id = a.consumer_id WHERE c.project_id = @p) t
            """, ("p", tenant.Id)));
        Assert.Equal(20, await cloud.ScalarAsync("SELECT count(DISTINCT a.consumer_id) FROM allocations a JOIN consumers c ON c.id = a.consumer_id WHERE c.project_id = @p", ("p", tenant.Id)));
        Assert.Equal((20L, 20L, 20 * 64L), await cloud.UsageAsync(tenant.Id));
        await AssertNoOvercommitAsync();
    }

    [Fact]
    public async Task CreateVms_over_grpc_gives_the_same_operation_and_result()
    {
        using var tenant = await cloud.CreateTenantAsync("grpcb", Roomy);
        using var channel = cloud.NewGrpcChannel();
        var compute = new Compute.ComputeClient(channel);

        var operation = await compute.CreateVmsAsync(new CreateVmsRequest { NamePrefix = "api", Flavor = Tenancy.Nano, Count = 5 }, Tenancy.Bearer(tenant.MemberToken));
        Assert.Equal("vm.create_batch", operation.Kind);
        Assert.Equal(5, operation.Batch.Vms.Count);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (operation.State is not ("SUCCEEDED" or "FAILED") && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
            operation = await compute.GetOperationAsync(new GetOperationRequest { Id = operation.Id }, Tenancy.Bearer(tenant.MemberToken));
        }

        Assert.Equal("SUCCEEDED", operation.State);
        Assert.Equal((5, 5, 5), (operation.Batch.Placed, operation.Batch.Created, operation.Batch.Minimum));
        foreach (var listed in operation.Batch.Vms)
        {
            var vm = await compute.GetVmAsync(new GetVmRequest { Id = listed.Id }, Tenancy.Bearer(tenant.MemberToken));
            Assert.Equal(("RUNNING", listed.HostId, listed.Name), (vm.State, vm.HostId, vm.Name));
            Assert.Equal(("", 32), (vm.Node, vm.HostId.Length));
        }
        Assert.Equal((5L, 5L, 5 * 64L), await cloud.UsageAsync(tenant.Id));
    }

    [Fact]
    public async Task With_a_minimum_below_the_count_the_vms_that_fit_are_placed_and_charged_and_the_rest_fail_with_their_reason()
    {
        using var tenant = await cloud.CreateTenantAsync("part", Roomy);
        var fit = await FittingAsync(LargeMemoryMb);
        Assert.True(fit >= 1, $"{fit} large VMs fit");

        var done = await tenant.Member.RunAsync(HttpMethod.Post, "/v1/vms/batch", $$"""{"namePrefix":"part","flavor":"{{await LargeFlavorAsync()}}","count":{{fit + 2}},"minimum":1}""");
        try
        {
            Assert.True(done.Str("state") == "SUCCEEDED", done.ToString());
            var batch = done.GetProperty("batch");
            Assert.Equal((fit, fit), (batch.GetProperty("placed").GetInt32(), batch.GetProperty("created").GetInt32()));
            var failed = batch.GetProperty("vms").EnumerateArray().Where(v => v.Str("state") == "ERROR").ToList();
            Assert.Equal(2, failed.Count);
            Assert.All(failed, v => Assert.Contains("resource-fit", v.Str("error"), StringComparison.Ordinal));
            Assert.All(failed, v => Assert.Equal("", v.Str("node")));
            Assert.Equal(2, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p AND state = 'ERROR' AND node_id IS NULL AND error LIKE '%resource-fit%'", ("p", tenant.Id)));
            Assert.Equal(fit, await cloud.ScalarAsync("SELECT count(*) FROM consumers WHERE project_id = @p", ("p", tenant.Id)));
            Assert.Equal((fit, fit, fit * LargeMemoryMb), await cloud.UsageAsync(tenant.Id));
            await AssertNoOvercommitAsync();
        }
        finally
        {
            // Give the room back to the other tests of this cloud.
            var placed = done.GetProperty("batch").GetProperty("vms").EnumerateArray().Where(v => v.Str("hostId").Length > 0).Select(v => v.Str("id"));
            await Task.WhenAll(placed.Select(id => tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{id}")));
        }
    }

    [Fact]
    public async Task When_fewer_than_the_minimum_fit_nothing_is_claimed_or_charged_and_the_operation_says_why()
    {
        using var tenant = await cloud.CreateTenantAsync("short", Roomy);
        var fit = await FittingAsync(LargeMemoryMb);
        var claimsBefore = await cloud.ScalarAsync("SELECT count(*) FROM consumers");

        var done = await tenant.Member.RunAsync(HttpMethod.Post, "/v1/vms/batch", $$"""{"namePrefix":"short","flavor":"{{await LargeFlavorAsync()}}","count":{{fit + 1}}}""");

        Assert.Equal("FAILED", done.Str("state"));
        Assert.Equal("RESOURCE_EXHAUSTED", done.Str("errorCode"));
        Assert.Contains($"Only {fit} of {fit + 1} VMs fit, fewer than the minimum of {fit + 1}; none was placed.", done.Str("errorMessage"), StringComparison.Ordinal);
        var vms = done.GetProperty("batch").GetProperty("vms").EnumerateArray().ToList();
        Assert.Equal(fit + 1, vms.Count);
        Assert.All(vms, v => Assert.True(v.Str("state") == "ERROR" && v.Str("error").Contains("fewer than the minimum", StringComparison.Ordinal), v.ToString()));
        Assert.Contains(vms, v => v.Str("error").Contains("resource-fit", StringComparison.Ordinal));
        Assert.Equal(0, done.GetProperty("batch").GetProperty("placed").GetInt32());
        Assert.Equal(fit + 1, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p AND state = 'ERROR' AND node_id IS NULL", ("p", tenant.Id)));
        Assert.Equal(claimsBefore, await cloud.ScalarAsync("SELECT count(*) FROM consumers"));
        Assert.Equal((0L, 0L, 0L), await cloud.UsageAsync(tenant.Id));
    }

    [Fact]
    public async Task A_batch_the_quota_rules_out_is_refused_on_both_wires_and_writes_nothing()
    {
        using var tenant = await cloud.CreateTenantAsync("quotab", """{"instances":3,"vcpus":100,"memoryMb":"100000","diskGb":"1000","snapshots":0}""");
        var before = await cloud.CountsAsync(tenant.Id);

        var (status, problem) = await tenant.Member.PostAsync("/v1/vms/batch", $$"""{"namePrefix":"many","flavor":"{{Tenancy.Nano}}","count":4,"minimum":1}""");
        using var channel = cloud.NewGrpcChannel();
        var error = await Assert.ThrowsAsync<RpcException>(() => new Compute.ComputeClient(channel).CreateVmsAsync(
            new CreateVmsRequest { NamePrefix = "many", Flavor = Tenancy.Nano, Count = 4 }, Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);

        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        Assert.Equal("RESOURCE_EXHAUSTED", problem.Str("code"));
        Assert.Contains("instances 0 used + 4 asked > 3 allowed", problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Equal(before, await cloud.CountsAsync(tenant.Id));
    }

    public static TheoryData<string, HttpStatusCode, string> BadBatches => new()
    {
        { """{"namePrefix":"b","flavor":"t.nano","count":0}""", HttpStatusCode.BadRequest, "count must be between 1 and 1000, not 0" },
        { """{"namePrefix":"b","flavor":"t.nano","count":1001}""", HttpStatusCode.BadRequest, "count must be between 1 and 1000, not 1001" },
        { """{"namePrefix":"b","flavor":"t.nano","count":3,"minimum":4}""", HttpStatusCode.BadRequest, "minimum must be between 1 and count (3)" },
        { """{"namePrefix":"b","flavor":"t.nano","count":3,"minimum":-1}""", HttpStatusCode.BadRequest, "minimum must be between 1 and count (3)" },
        { """{"namePrefix":"b","flavor":"no-such-flavor","count":3}""", HttpStatusCode.NotFound, "Flavor 'no-such-flavor' does not exist" },
        { """{"flavor":"t.nano","count":3}""", HttpStatusCode.BadRequest, "name_prefix is required" },
        { "{\"namePrefix\":\"" + new string('a', 60) + "\",\"flavor\":\"t.nano\",\"count\":100}", HttpStatusCode.BadRequest, "name_prefix is too long for 100 VMs" },
        { """{"namePrefix":"b","count":3}""", HttpStatusCode.BadRequest, "flavor is required" },
        { """{"namePrefix":"b","flavor":"t.nano","count":3,"labels":{"placement.cloud/colour":"red"}}""", HttpStatusCode.BadRequest, "placement.cloud/colour" },
        { """{"namePrefix":"b","flavor":"t.nano","count":3,"snapshot":"s"}""", HttpStatusCode.BadRequest, "snapshot" },
    };

    [Theory]
    [MemberData(nameof(BadBatches))]
    public async Task A_bad_batch_is_refused_with_a_clear_error_and_writes_nothing(string body, HttpStatusCode expected, string detail)
    {
        using var tenant = await cloud.CreateTenantAsync("badb", Roomy);
        var before = await cloud.CountsAsync(tenant.Id);

        var (status, problem) = await tenant.Member.PostAsync("/v1/vms/batch", body);

        Assert.True(status == expected, problem.ToString());
        Assert.Contains(detail, problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(before, await cloud.CountsAsync(tenant.Id));
    }

    [Fact]
    public async Task A_bad_batch_over_grpc_is_invalid_argument_and_writes_nothing()
    {
        using var tenant = await cloud.CreateTenantAsync("badg", Roomy);
        using var channel = cloud.NewGrpcChannel();
        var compute = new Compute.ComputeClient(channel);
        var before = await cloud.CountsAsync(tenant.Id);

        var tooMany = await Assert.ThrowsAsync<RpcException>(() => compute.CreateVmsAsync(
            new CreateVmsRequest { NamePrefix = "g", Flavor = Tenancy.Nano, Count = 2, Minimum = 3 }, Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);
        var none = await Assert.ThrowsAsync<RpcException>(() => compute.CreateVmsAsync(
            new CreateVmsRequest { NamePrefix = "g", Flavor = Tenancy.Nano }, Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, tooMany.StatusCode);
        Assert.Contains("minimum must be between 1 and count (2)", tooMany.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(StatusCode.InvalidArgument, none.StatusCode);
        Assert.Contains("count must be between 1 and 1000, not 0", none.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(before, await cloud.CountsAsync(tenant.Id));
    }

    [Fact]
    public async Task A_vm_its_agent_refuses_ends_in_error_with_its_claim_and_quota_given_back_and_the_others_run()
    {
        using var tenant = await cloud.CreateTenantAsync("refuse", Roomy);

        var done = await tenant.Member.RunAsync(HttpMethod.Post, "/v1/vms/batch", $$"""{"namePrefix":"refuse","flavor":"{{Tenancy.Nano}}","count":4,"minimum":1}""");

        Assert.True(done.Str("state") == "SUCCEEDED", done.ToString());
        var batch = done.GetProperty("batch");
        Assert.Equal((4, 3), (batch.GetProperty("placed").GetInt32(), batch.GetProperty("created").GetInt32()));
        var refused = batch.GetProperty("vms").EnumerateArray().Single(v => v.Str("name") == RefusingHypervisor.RefusedName);
        Assert.Equal("ERROR", refused.Str("state"));
        Assert.True(refused.Str("error").Contains("No room left for the guest's disk.", StringComparison.Ordinal), refused.Str("error"));
        var (_, vm) = await tenant.Reader.GetJsonAsync($"/v1/vms/{refused.Str("id")}");
        Assert.Equal(("ERROR", ""), (vm.Str("state"), vm.Str("node")));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = @id", ("id", Guid.Parse(refused.Str("id")))));
        Assert.Equal(3, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p AND state = 'RUNNING' AND node_id IS NOT NULL", ("p", tenant.Id)));
        Assert.Equal((3L, 3L, 3 * 64L), await cloud.UsageAsync(tenant.Id));
    }

    [Fact]
    public async Task A_retry_with_the_same_key_gets_the_same_operation_and_another_request_under_it_is_refused()
    {
        using var tenant = await cloud.CreateTenantAsync("retry", Roomy);
        var body = $$"""{"namePrefix":"again","flavor":"{{Tenancy.Nano}}","count":3}""";

        var (_, first) = await tenant.Member.PostAsync("/v1/vms/batch", body, idempotencyKey: "batch-once-1");
        var (status, second) = await tenant.Member.PostAsync("/v1/vms/batch", body, idempotencyKey: "batch-once-1");
        var (conflict, problem) = await tenant.Member.PostAsync("/v1/vms/batch", body.Replace("3", "2", StringComparison.Ordinal), idempotencyKey: "batch-once-1");

        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.Equal(first.Str("id"), second.Str("id"));
        Assert.Equal(HttpStatusCode.Conflict, conflict);
        Assert.Equal("FAILED_PRECONDITION", problem.Str("code"));
        Assert.Equal("SUCCEEDED", (await tenant.Member.WaitForOperationAsync(first.Str("id"))).Str("state"));
        Assert.Equal(3, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p", ("p", tenant.Id)));
    }

    [Fact]
    public async Task A_batch_abandoned_before_its_claim_committed_is_resumed_and_placed_once()
    {
        using var tenant = await cloud.CreateTenantAsync("resumeb", Roomy);
        // What a controller killed while placing leaves: the rows PENDING, the operation RUNNING, its owner gone, its lease run out.
        var batch = new CreateVmsResult { Requested = 3, Minimum = 3 };
        for (var i = 1; i <= 3; i++)
        {
            var id = Guid.CreateVersion7();
            batch.Vms.Add(new BatchVm { Id = id.ToString(), Name = $"resumed-{i}", State = "PENDING" });
            await cloud.InsertPendingVmAsync(tenant.Id, id, $"resumed-{i}");
        }
        var operationId = Guid.CreateVersion7();
        await cloud.ScalarAsync(
            """
            WITH o AS (INSERT INTO operations (id, project_id, kind, target_id, state, progress, created_at, updated_at, owner, lease_expires_at, request)
                       VALUES (@id, @p, 'vm.create_batch', 'resumed', 'RUNNING', 10, now(), now(), 'crashed-replica', now() - interval '1 minute', @r) RETURNING 1)
            SELECT count(*) FROM o
            """, ("id", operationId), ("p", tenant.Id), ("r", Google.Protobuf.JsonFormatter.Default.Format(batch)));

        var done = await tenant.Member.WaitForOperationAsync(operationId.ToString());

        Assert.True(done.Str("state") == "SUCCEEDED", done.ToString());
        Assert.Equal("RESUMED", done.Str("recovery"));
        Assert.Equal(3, done.GetProperty("batch").GetProperty("created").GetInt32());
        Assert.Equal(3, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p AND state = 'RUNNING' AND node_id IS NOT NULL", ("p", tenant.Id)));
        Assert.Equal(3, await cloud.ScalarAsync("SELECT count(*) FROM consumers WHERE project_id = @p", ("p", tenant.Id)));
        Assert.Equal((3L, 3L, 3 * 64L), await cloud.UsageAsync(tenant.Id));
    }

    [Fact]
    public async Task Cancelling_a_batch_not_started_yet_removes_its_vms()
    {
        using var tenant = await cloud.CreateTenantAsync("cancelb", Roomy);
        var vmId = Guid.CreateVersion7();
        await cloud.InsertPendingVmAsync(tenant.Id, vmId, "held-1");
        var batch = new CreateVmsResult { Requested = 1, Minimum = 1, Vms = { new BatchVm { Id = vmId.ToString(), Name = "held-1", State = "PENDING" } } };
        // Held by another replica with a live lease: nobody here starts it.
        var operationId = Guid.CreateVersion7();
        await cloud.ScalarAsync(
            """
            WITH o AS (INSERT INTO operations (id, project_id, kind, target_id, state, progress, created_at, updated_at, owner, lease_expires_at, request)
                       VALUES (@id, @p, 'vm.create_batch', 'held', 'PENDING', 0, now(), now(), 'other-replica', now() + interval '10 minutes', @r) RETURNING 1)
            SELECT count(*) FROM o
            """, ("id", operationId), ("p", tenant.Id), ("r", Google.Protobuf.JsonFormatter.Default.Format(batch)));

        var (status, cancelled) = await tenant.Member.PostAsync($"/v1/operations/{operationId}/cancel", "");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("CANCELLED", cancelled.Str("errorCode"));
        Assert.Equal(HttpStatusCode.NotFound, (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Status);
    }

    [Fact]
    public async Task Cloudctl_vm_create_with_count_and_min_uses_the_batch_call()
    {
        var config = Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken);
        try
        {
            var (exit, output) = await Cloudctl.RunAsync(config, "vm", "create", "--name", "cli-batch", "--flavor", Tenancy.Nano, "--count", "3", "--min", "2", "-o", "json");
            var (tableExit, table) = await Cloudctl.RunAsync(config, "vm", "create", "--name", "cli-table", "--flavor", Tenancy.Nano, "--count", "2");

            Assert.Equal(0, exit);
            var operation = JsonDocument.Parse(output).RootElement;
            Assert.Equal("vm.create_batch", operation.Str("kind"));
            Assert.Equal("SUCCEEDED", operation.Str("state"));
            Assert.Equal((3, 2), (operation.GetProperty("batch").GetProperty("created").GetInt32(), operation.GetProperty("batch").GetProperty("minimum").GetInt32()));
            Assert.Equal(3, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE name IN ('cli-batch-1', 'cli-batch-2', 'cli-batch-3') AND state = 'RUNNING'"));
            Assert.Equal(0, tableExit);
            Assert.Contains("2 created, 2 placed of 2 (minimum 2)", table, StringComparison.Ordinal);
            Assert.Single(table.Split('\n'), l => l.Contains("cli-table-2", StringComparison.Ordinal) && l.Contains("RUNNING", StringComparison.Ordinal) && l.Contains("test-node-", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(config);
        }
    }

    private async Task<string> LargeFlavorAsync()
    {
        var (status, _) = await cloud.Http.PostAsync("/v1/flavors", $$"""{"name":"{{Large}}","vcpus":1,"memoryMb":"{{LargeMemoryMb}}","diskGb":"0","isPublic":true}""");
        Assert.True(status is HttpStatusCode.Created or HttpStatusCode.Conflict);
        return Large;
    }

    /// <summary>How many VMs of <paramref name="memoryMb"/> fit on the nodes as they are now (memory binds; the nodes have vCPUs to spare).</summary>
    private async Task<int> FittingAsync(long memoryMb)
        => (int)await cloud.ScalarAsync(
            """
            SELECT coalesce(sum(floor(((i.total - i.reserved) * i.allocation_ratio - coalesce(u.used, 0)) / @m)), 0)::bigint
              FROM inventories i
              LEFT JOIN (SELECT node_id, sum(used) AS used FROM allocations WHERE resource_class = 'MEMORY_MB' GROUP BY node_id) u ON u.node_id = i.node_id
             WHERE i.resource_class = 'MEMORY_MB'
            """, ("m", memoryMb));

    private async Task AssertNoOvercommitAsync()
    {
        await using var dataSource = NpgsqlDataSource.Create(cloud.ConnectionString);
        Assert.Empty(await LedgerInvariants.CheckAsync(dataSource, CancellationToken.None));
    }
}

/// <summary>How cloudctl turns --count and --min into a request, without a server.</summary>
public sealed class CloudctlBatchParsingTests
{
    [Fact]
    public void Count_makes_a_batch_request_whose_prefix_is_the_name()
    {
        var template = new CreateVmRequest { Name = "web", Flavor = "m1.tiny", Image = "img", UserData = "#cloud-config" };
        template.Labels["tier"] = "front";

        var (path, request) = Cloud.Cli.Commands.CreateRequest(template, 5, 3);

        Assert.Equal("v1/vms/batch", path);
        var batch = Assert.IsType<CreateVmsRequest>(request);
        Assert.Equal(("web", "m1.tiny", "img", "#cloud-config", 5, 3), (batch.NamePrefix, batch.Flavor, batch.Image, batch.UserData, batch.Count, batch.Minimum));
        Assert.Equal("front", batch.Labels["tier"]);
        Assert.Equal(0, Assert.IsType<CreateVmsRequest>(Cloud.Cli.Commands.CreateRequest(template, 5, null).Request).Minimum);
    }

    [Fact]
    public void Without_count_it_is_one_vm_and_min_alone_or_a_snapshot_batch_is_refused()
    {
        var template = new CreateVmRequest { Name = "one", Flavor = "m1.tiny" };
        Assert.Equal("v1/vms", Cloud.Cli.Commands.CreateRequest(template, null, null).Path);
        Assert.Equal("--min needs --count.", Assert.Throws<Cloud.Cli.CliException>(() => Cloud.Cli.Commands.CreateRequest(template, null, 2)).Message);
        template.Snapshot = "snap";
        Assert.Contains("--snapshot", Assert.Throws<Cloud.Cli.CliException>(() => Cloud.Cli.Commands.CreateRequest(template, 2, null)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_options_parse_into_the_batch_and_a_non_number_is_refused()
    {
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings { Out = new Spectre.Console.AnsiConsoleOutput(new StringWriter()) });
        var parse = Cloud.Cli.Commands.Build(console).Parse(["vm", "create", "--name", "w", "--count", "4", "--min", "2"]);
        Assert.Empty(parse.Errors);
        Assert.Equal(4, parse.GetValue<int?>("--count"));
        Assert.Equal(2, parse.GetValue<int?>("--min"));
        Assert.NotEmpty(Cloud.Cli.Commands.Build(console).Parse(["vm", "create", "--name", "w", "--count", "many"]).Errors);
        await Task.CompletedTask;
    }
}
