using System.Net;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

[Collection(CloudCollection.Name)]
public sealed class VmLifecycleTests(CloudFixture cloud)
{
    [Fact]
    public async Task Create_places_the_vm_on_an_agent_claims_capacity_and_reaches_running()
    {
        var (status, operation) = await cloud.Http.PostAsync("/v1/vms", """{"name":"web-1","flavor":"m1.tiny","labels":{"app":"web"}}""");
        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.Equal("vm.create", operation.Str("kind"));

        var done = await cloud.Http.WaitForOperationAsync(operation.Str("id"));
        Assert.Equal("SUCCEEDED", done.Str("state"));
        Assert.Equal(100, done.GetProperty("progress").GetInt32());

        var vmId = operation.Str("targetId");
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal("RUNNING", vm.Str("state"));
        Assert.StartsWith("test-node-", vm.Str("node"), StringComparison.Ordinal);
        Assert.Equal("web", vm.GetProperty("labels").GetProperty("app").GetString());

        // The claim is in the ledger: one allocation per resource class, on the VM's node.
        var allocated = await cloud.ScalarAsync(
            "SELECT count(*) FROM allocations a JOIN vms v ON v.id = a.consumer_id AND v.node_id = a.node_id WHERE v.id = @id",
            ("id", Guid.Parse(vmId)));
        Assert.Equal(3, allocated);
        Assert.Equal(512, await cloud.ScalarAsync(
            "SELECT used FROM allocations WHERE consumer_id = @id AND resource_class = 'MEMORY_MB'", ("id", Guid.Parse(vmId))));
    }

    [Fact]
    public async Task Delete_releases_the_capacity_and_hides_the_vm()
    {
        var (_, created) = await cloud.Http.PostAsync("/v1/vms", """{"name":"to-delete","flavor":"m1.tiny"}""");
        Assert.Equal("SUCCEEDED", (await cloud.Http.WaitForOperationAsync(created.Str("id"))).Str("state"));
        var vmId = created.Str("targetId");

        var (status, deletion) = await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/vms/{vmId}");
        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.Equal("SUCCEEDED", (await cloud.Http.WaitForOperationAsync(deletion.Str("id"))).Str("state"));

        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = @id", ("id", Guid.Parse(vmId))));
        var (getStatus, problem) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal(HttpStatusCode.NotFound, getStatus);
        Assert.Equal("NOT_FOUND", problem.Str("code"));
    }

    [Fact]
    public async Task A_retry_with_the_same_idempotency_key_returns_the_first_operation_and_creates_one_vm()
    {
        const string body = """{"name":"once","flavor":"m1.tiny"}""";
        var (first, a) = await cloud.Http.PostAsync("/v1/vms", body, idempotencyKey: "create-once-1");
        var (second, b) = await cloud.Http.PostAsync("/v1/vms", body, idempotencyKey: "create-once-1");
        Assert.Equal(HttpStatusCode.Accepted, first);
        Assert.Equal(HttpStatusCode.Accepted, second);
        Assert.Equal(a.Str("id"), b.Str("id"));
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE name = 'once'"));

        var (conflict, problem) = await cloud.Http.PostAsync("/v1/vms", """{"name":"other","flavor":"m1.tiny"}""", idempotencyKey: "create-once-1");
        Assert.Equal(HttpStatusCode.Conflict, conflict);
        Assert.Equal("FAILED_PRECONDITION", problem.Str("code"));
    }

    [Fact]
    public async Task A_vm_larger_than_any_node_fails_with_the_reason_and_claims_nothing()
    {
        // Nodes have 8192 MB: a flavor of 1 vCPU and 16384 MB fits no node by memory alone.
        var (flavorStatus, _) = await cloud.Http.PostAsync("/v1/flavors", """{"name":"mem-heavy","vcpus":1,"memoryMb":"16384","diskGb":"1","isPublic":true}""");
        Assert.Equal(HttpStatusCode.Created, flavorStatus);

        var (_, operation) = await cloud.Http.PostAsync("/v1/vms", """{"name":"too-big","flavor":"mem-heavy"}""");
        var done = await cloud.Http.WaitForOperationAsync(operation.Str("id"));
        Assert.Equal("FAILED", done.Str("state"));
        Assert.Equal("RESOURCE_EXHAUSTED", done.Str("errorCode"));
        Assert.Contains("2 rejected by resource-fit", done.Str("errorMessage"), StringComparison.Ordinal);
        Assert.Contains("MEMORY_MB", done.Str("errorMessage"), StringComparison.Ordinal);
        Assert.Contains("16384", done.Str("errorMessage"), StringComparison.Ordinal);

        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{operation.Str("targetId")}");
        Assert.Equal("ERROR", vm.Str("state"));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = @id", ("id", Guid.Parse(operation.Str("targetId")))));
    }

    [Fact]
    public async Task Nodes_report_their_inventory_and_usage()
    {
        var (status, body) = await cloud.Http.GetJsonAsync("/v1/nodes");
        Assert.Equal(HttpStatusCode.OK, status);
        var nodes = body.GetProperty("nodes").EnumerateArray().ToList();
        Assert.Contains(nodes, n => n.Str("name") == "test-node-1" && n.Str("hypervisor") == "fake" && n.Str("address").StartsWith("https://127.0.0.2:", StringComparison.Ordinal));
        var memory = nodes[0].GetProperty("resources").EnumerateArray().Single(r => r.Str("resourceClass") == "MEMORY_MB");
        Assert.Equal(8192, long.Parse(memory.Str("total"), System.Globalization.CultureInfo.InvariantCulture));
    }
}
