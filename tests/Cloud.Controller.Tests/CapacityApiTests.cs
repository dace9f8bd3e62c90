using System.Net;
using System.Text.Json;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>
/// Capacity planning through the API (fake agents, two nodes): the report agrees with the
/// ledger, what fits and the growth follow the VMs, and a drained node or a lost zone is
/// played out without claiming anything.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class CapacityApiTests(CloudFixture cloud) : IDisposable
{
    private readonly List<string> _files = [];

    [Fact]
    public async Task The_report_agrees_with_the_ledger_and_one_more_vm_grows_it_and_fits_one_less()
    {
        using var tenant = await cloud.CreateTenantAsync("capacity");
        var first = await tenant.Member.CreateRunningVmAsync("counted-1");

        var before = await PlanAsync("""{"flavors":["t.nano"],"trendDays":1}""");
        var second = await tenant.Member.CreateRunningVmAsync("counted-2");
        var after = await PlanAsync("""{"flavors":["t.nano"],"trendDays":1}""");

        var (_, nodes) = await cloud.Http.GetJsonAsync("/v1/nodes");
        var vcpus = nodes.GetProperty("nodes").EnumerateArray().Select(n => n.GetProperty("resources").EnumerateArray().Single(r => r.Str("resourceClass") == "VCPU")).ToList();
        var vcpu = Resource(after, "VCPU");
        Assert.Equal(2, after.GetProperty("nodes").GetInt32());
        Assert.Equal(vcpus.Sum(r => (long)Math.Floor((Int64(r, "total") - Int64(r, "reserved")) * r.GetProperty("allocationRatio").GetDouble())), Int64(vcpu, "capacity"));
        Assert.Equal(vcpus.Sum(r => Int64(r, "used")), Int64(vcpu, "used"));
        Assert.Equal(Int64(vcpu, "capacity") - Int64(vcpu, "used"), Int64(vcpu, "free"));
        // Every VM was created today: a day's growth grew by the second VM's vCPU and memory.
        Assert.Equal(1.0, vcpu.GetProperty("growthPerDay").GetDouble() - Resource(before, "VCPU").GetProperty("growthPerDay").GetDouble());
        Assert.Equal(64.0, Resource(after, "MEMORY_MB").GetProperty("growthPerDay").GetDouble() - Resource(before, "MEMORY_MB").GetProperty("growthPerDay").GetDouble());
        Assert.Equal(Math.Round(Int64(vcpu, "free") / vcpu.GetProperty("growthPerDay").GetDouble(), 1), vcpu.GetProperty("daysUntilFull").GetDouble());
        Assert.Equal(Int32(before.GetProperty("fits")[0], "count") - 1, Int32(after.GetProperty("fits")[0], "count"));
        Assert.Equal(0, Int32(after, "displaced"));

        foreach (var vmId in new[] { first, second })
        {
            Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        }
    }

    [Fact]
    public async Task A_drain_played_out_places_the_nodes_vms_on_the_other_and_claims_nothing()
    {
        using var tenant = await cloud.CreateTenantAsync("capdrain");
        var vmIds = await cloud.CreateRunningVmsOnFirstNodeAsync(tenant, "planned", 2);
        var onNode = (int)await cloud.ScalarAsync("SELECT count(*) FROM vms v JOIN nodes n ON n.id = v.node_id WHERE n.name = 'test-node-1' AND v.state <> 'DELETED'");
        var allocations = await cloud.ScalarAsync("SELECT count(*) FROM allocations");
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken));

        var (exit, json) = await Cloudctl.RunAsync(config, "capacity", "--drain", "test-node-1", "-o", "json");
        var (_, table) = await Cloudctl.RunAsync(config, "capacity", "--drain", "test-node-1");

        Assert.Equal(0, exit);
        var plan = JsonDocument.Parse(json).RootElement;
        Assert.Equal(1, Int32(plan, "nodes"));
        Assert.Equal(onNode, Int32(plan, "displaced"));
        var unplaced = plan.TryGetProperty("unplaced", out var list) ? list.EnumerateArray().Select(u => u.Str("id")).ToList() : [];
        Assert.Equal(onNode, Int32(plan, "placedAgain") + unplaced.Count);
        Assert.DoesNotContain(vmIds[0], unplaced);
        Assert.DoesNotContain(vmIds[1], unplaced);
        var (_, nodes) = await cloud.Http.GetJsonAsync("/v1/nodes");
        var otherUsed = Int64(nodes.GetProperty("nodes").EnumerateArray().Single(n => n.Str("name") == "test-node-2")
            .GetProperty("resources").EnumerateArray().Single(r => r.Str("resourceClass") == "VCPU"), "used");
        var movedVcpus = await cloud.ScalarAsync(
            "SELECT coalesce(sum(v.vcpus), 0) FROM vms v JOIN nodes n ON n.id = v.node_id WHERE n.name = 'test-node-1' AND v.state <> 'DELETED' AND NOT (v.id::text = ANY(@unplaced))",
            ("unplaced", unplaced.ToArray()));
        Assert.Equal(otherUsed + movedVcpus, Int64(Resource(plan, "VCPU"), "used"));
        Assert.Contains("FULL IN (DAYS)", table, StringComparison.Ordinal);
        Assert.Contains($"{onNode} VMs displaced", table, StringComparison.Ordinal);
        // A plan changes nothing.
        Assert.Equal(allocations, await cloud.ScalarAsync("SELECT count(*) FROM allocations"));
        Assert.Equal(2, await cloud.ScalarAsync("SELECT count(*) FROM nodes WHERE schedulable"));
        foreach (var vmId in vmIds)
        {
            Assert.Equal("test-node-1", (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node"));
            Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        }
    }

    [Fact]
    public async Task Losing_every_zone_leaves_no_room_and_names_every_vm_with_the_reason()
    {
        using var tenant = await cloud.CreateTenantAsync("capzone");
        var vmId = await tenant.Member.CreateRunningVmAsync("homeless");
        var (_, zones) = await cloud.Http.GetJsonAsync("/v1/availability-zones");
        var all = zones.GetProperty("zones").EnumerateArray().Select(z => z.Str("name")).ToList();

        var plan = await PlanAsync(JsonSerializer.Serialize(new { loseZones = all }));

        Assert.Equal(0, Int32(plan, "nodes"));
        Assert.Equal(0, Int64(Resource(plan, "VCPU"), "capacity"));
        Assert.Equal(await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE node_id IS NOT NULL AND state <> 'DELETED'"), Int32(plan, "displaced"));
        Assert.Equal(0, Int32(plan, "placedAgain"));
        var mine = plan.GetProperty("unplaced").EnumerateArray().Single(u => u.Str("id") == vmId);
        Assert.Equal("homeless", mine.Str("name"));
        Assert.Equal("No node is left to take it: every node is drained or in a lost zone.", mine.Str("reason"));
        Assert.NotEmpty(plan.GetProperty("fits").EnumerateArray());
        Assert.All(plan.GetProperty("fits").EnumerateArray(), f => Assert.Equal(0, Int32(f, "count")));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    [Theory]
    [InlineData("member", """{}""", HttpStatusCode.Forbidden, "Only operators plan capacity")]
    [InlineData("operator", """{"drainNodes":["no-such-node"]}""", HttpStatusCode.NotFound, "Node 'no-such-node'")]
    [InlineData("operator", """{"drainNodes":["Bad_Name"]}""", HttpStatusCode.BadRequest, "node 'Bad_Name' is invalid")]
    [InlineData("operator", """{"loseZones":["zone-nowhere"]}""", HttpStatusCode.NotFound, "Availability zone 'zone-nowhere'")]
    [InlineData("operator", """{"flavors":["no-such-flavor"]}""", HttpStatusCode.NotFound, "Flavor 'no-such-flavor'")]
    [InlineData("operator", """{"trendDays":366}""", HttpStatusCode.BadRequest, "trend_days must be 1 to 365")]
    [InlineData("operator", """{"trendDays":-1}""", HttpStatusCode.BadRequest, "trend_days must be 1 to 365")]
    public async Task Bad_plans_are_refused_with_the_reason(string role, string body, HttpStatusCode expected, string detail)
    {
        using var tenant = await cloud.CreateTenantAsync("capbad");
        var http = role == "operator" ? cloud.Http : tenant.Member;

        var (status, problem) = await http.PostAsync("/v1/capacity/plan", body);

        Assert.Equal(expected, status);
        Assert.Contains(detail, problem.Str("detail"), StringComparison.Ordinal);
    }

    private async Task<JsonElement> PlanAsync(string body)
    {
        var (status, plan) = await cloud.Http.PostAsync("/v1/capacity/plan", body);
        Assert.True(status == HttpStatusCode.OK, plan.ToString());
        return plan;
    }

    private static JsonElement Resource(JsonElement plan, string resourceClass)
        => plan.GetProperty("resources").EnumerateArray().Single(r => r.Str("resourceClass") == resourceClass);

    // Proto JSON leaves zeros out, and writes 64-bit integers as strings.
    private static long Int64(JsonElement element, string name) => element.TryGetProperty(name, out var value) ? long.Parse(value.GetString()!) : 0;

    private static int Int32(JsonElement element, string name) => element.TryGetProperty(name, out var value) ? value.GetInt32() : 0;

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
