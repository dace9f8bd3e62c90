using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>
/// The controller's migration flow against fake agents (two in this process): the guest
/// arrives on the target, the VM's row and its claim move there, and nothing stays behind.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class FakeMigrationTests(CloudFixture cloud)
{
    [Fact]
    public async Task Migrate_BetweenFakeNodes_MovesTheGuestTheRowAndTheClaim()
    {
        using var tenant = await cloud.CreateTenantAsync("fakemig");
        var vmId = await tenant.Member.CreateRunningVmAsync("wanderer");
        var source = (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");
        var target = source == "test-node-1" ? "test-node-2" : "test-node-1";

        var migrated = await cloud.Http.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/migrate", $$"""{"node":"{{target}}"}""");

        Assert.True(migrated.Str("state") == "SUCCEEDED", migrated.ToString());
        var (_, vm) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal(target, vm.Str("node"));
        Assert.Equal("RUNNING", vm.Str("state"));
        Assert.Equal(target, await cloud.QueryAsync(
            "SELECT string_agg(DISTINCT n.name, ',') FROM allocations a JOIN nodes n ON n.id = a.node_id WHERE a.consumer_id = @id", ("id", Guid.Parse(vmId))));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = @id", ("id", Guid.Parse(migrated.Str("id")))));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }
}
