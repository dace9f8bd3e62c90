using System.Net;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>
/// The controller's migration flow against fake agents (two in this process): the guest
/// arrives on the target, the VM's row and its claim move there, and nothing stays behind;
/// with no node named, the scheduler chooses one with the VM's own constraints, or says why none.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class FakeMigrationTests(CloudFixture cloud)
{
    [Fact]
    public async Task Migrate_BetweenFakeNodes_MovesTheGuestTheRowAndTheClaim()
    {
        using var tenant = await cloud.CreateTenantAsync("fakemig");
        var vmId = await tenant.Member.CreateRunningVmAsync("wanderer");
        var source = (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");
        var target = source == "test-node-1" ? "test-node-2" : "test-node-1";

        var migrated = await cloud.Http.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/migrate", $$"""{"node":"{{target}}"}""");

        Assert.True(migrated.Str("state") == "SUCCEEDED", migrated.ToString());
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal(target, vm.Str("node"));
        Assert.Equal("RUNNING", vm.Str("state"));
        Assert.Equal(target, await cloud.QueryAsync(
            "SELECT string_agg(DISTINCT n.name, ',') FROM allocations a JOIN nodes n ON n.id = a.node_id WHERE a.consumer_id = @id", ("id", Guid.Parse(vmId))));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = @id", ("id", Guid.Parse(migrated.Str("id")))));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    [Fact]
    public async Task Migrate_WithNoNodeNamed_GoesWhereTheSchedulerChoosesAndNeverStays()
    {
        using var tenant = await cloud.CreateTenantAsync("automig");
        var vmId = await tenant.Member.CreateRunningVmAsync("roamer");
        var first = (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");

        // Two nodes: the only other one is the choice, and back again the second time.
        foreach (var expected in new[] { Other(first), first })
        {
            var migrated = await cloud.Http.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/migrate", "{}");

            Assert.True(migrated.Str("state") == "SUCCEEDED", migrated.ToString());
            Assert.Equal(expected, (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node"));
            Assert.Equal(expected, await cloud.QueryAsync(
                "SELECT string_agg(DISTINCT n.name, ',') FROM allocations a JOIN nodes n ON n.id = a.node_id WHERE a.consumer_id = @id", ("id", Guid.Parse(vmId))));
            Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = @id", ("id", Guid.Parse(migrated.Str("id")))));
        }
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    [Fact]
    public async Task Migrate_WithNoNodeNamed_FailsWithTheFiltersReasonWhenTheOnlyOtherNodeIsCordoned()
    {
        using var tenant = await cloud.CreateTenantAsync("nowhere");
        var vmId = await tenant.Member.CreateRunningVmAsync("stayer");
        var source = (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");
        Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{Other(source)}/cordon", "{}")).Status);
        try
        {
            var refused = await cloud.Http.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/migrate", "{}");

            Assert.Equal("FAILED", refused.Str("state"));
            Assert.Equal("RESOURCE_EXHAUSTED", refused.Str("errorCode"));
            var error = refused.Str("errorMessage");
            Assert.Contains("No node to migrate the VM to", error, StringComparison.Ordinal);
            Assert.Contains("not schedulable", error, StringComparison.Ordinal);
            var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
            Assert.Equal(source, vm.Str("node"));
            Assert.Equal("RUNNING", vm.Str("state"));
            Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = @id", ("id", Guid.Parse(refused.Str("id")))));
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{Other(source)}/uncordon", "{}")).Status);
        }
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    [Fact]
    public async Task Migrate_AStoppedVm_MovesItStoppedWithItsClaim()
    {
        using var tenant = await cloud.CreateTenantAsync("coldmig");
        var vmId = await tenant.Member.CreateRunningVmAsync("sleeper");
        var source = (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/stop", """{"force":true}""")).Str("state"));

        var migrated = await cloud.Http.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/migrate", "{}");

        Assert.True(migrated.Str("state") == "SUCCEEDED", migrated.ToString());
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal((Other(source), "STOPPED"), (vm.Str("node"), vm.Str("state")));
        Assert.Equal(Other(source), await cloud.QueryAsync(
            "SELECT string_agg(DISTINCT n.name, ',') FROM allocations a JOIN nodes n ON n.id = a.node_id WHERE a.consumer_id = @id", ("id", Guid.Parse(vmId))));
        // It starts where it went.
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/start")).Str("state"));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    private static string Other(string node) => node == "test-node-1" ? "test-node-2" : "test-node-1";
}
