using System.Net;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>
/// Operators cordon a node: it keeps its VMs, takes no new ones (and the dry run says why),
/// and takes them again once uncordoned. Only operators may, and bad names are refused.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class NodeCordonTests(CloudFixture cloud)
{
    [Fact]
    public async Task A_cordoned_node_keeps_its_vms_and_gets_no_new_ones_until_uncordoned()
    {
        using var tenant = await cloud.CreateTenantAsync("cordon");
        var resident = await tenant.Member.CreateRunningVmAsync("resident");
        var cordoned = (await cloud.Http.GetJsonAsync($"/v1/vms/{resident}")).Body.Str("node");
        var other = cordoned == "test-node-1" ? "test-node-2" : "test-node-1";
        try
        {
            var (status, node) = await cloud.Http.PostAsync($"/v1/nodes/{cordoned}/cordon", "{}");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.False(node.GetProperty("schedulable").GetBoolean());
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{cordoned}/cordon", "{}")).Status);

            var placed = new List<string>();
            for (var i = 0; i < 4; i++)
            {
                var vm = await tenant.Member.CreateRunningVmAsync($"newcomer-{i}");
                placed.Add((await cloud.Http.GetJsonAsync($"/v1/vms/{vm}")).Body.Str("node"));
            }
            Assert.All(placed, n => Assert.Equal(other, n));
            Assert.Equal("RUNNING", (await tenant.Member.GetJsonAsync($"/v1/vms/{resident}")).Body.Str("state"));
            var (_, answer) = await cloud.Http.PostAsync("/v1/placement/dry-run", $$"""{"spec":{"vcpus":1,"memoryMb":"64"},"explainNode":"{{cordoned}}"}""");
            Assert.False(answer.GetProperty("explanation").GetProperty("eligible").GetBoolean());
            Assert.Contains("not schedulable", answer.GetProperty("explanation").ToString(), StringComparison.Ordinal);
            var (_, list) = await cloud.Http.GetJsonAsync("/v1/nodes");
            Assert.Contains(list.GetProperty("nodes").EnumerateArray(), n => n.Str("name") == cordoned && !n.GetProperty("schedulable").GetBoolean());
        }
        finally
        {
            var (status, node) = await cloud.Http.PostAsync($"/v1/nodes/{cordoned}/uncordon", "{}");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.True(node.GetProperty("schedulable").GetBoolean());
        }
        var (_, again) = await cloud.Http.PostAsync("/v1/placement/dry-run", $$"""{"spec":{"vcpus":1,"memoryMb":"64"},"explainNode":"{{cordoned}}"}""");
        Assert.True(again.GetProperty("explanation").GetProperty("eligible").GetBoolean());
    }

    [Theory]
    [InlineData("operator", "/v1/nodes/no-such-node/cordon", HttpStatusCode.NotFound, "Node 'no-such-node'")]
    [InlineData("operator", "/v1/nodes/Not_A_Node/cordon", HttpStatusCode.BadRequest, "node 'Not_A_Node' is invalid")]
    [InlineData("member", "/v1/nodes/test-node-1/cordon", HttpStatusCode.Forbidden, "Only operators cordon nodes")]
    [InlineData("member", "/v1/nodes/test-node-1/uncordon", HttpStatusCode.Forbidden, "Only operators cordon nodes")]
    public async Task Cordoning_is_for_operators_and_known_nodes(string role, string path, HttpStatusCode expected, string detail)
    {
        using var tenant = await cloud.CreateTenantAsync("cordonbad");
        var http = role == "operator" ? cloud.Http : tenant.Member;

        var (status, problem) = await http.PostAsync(path, "{}");

        Assert.Equal(expected, status);
        Assert.Contains(detail, problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(2, await cloud.ScalarAsync("SELECT count(*) FROM nodes WHERE schedulable"));
    }
}
