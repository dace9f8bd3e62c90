using System.Net;
using Cloud.Controller.Tests.Support;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Tests;

/// <summary>
/// vm.create_from_snapshot places the new VM like any create: on the snapshot's node when the
/// scheduler chooses it, or on another node that pulls the snapshot's export from it. Against fake
/// agents; the pull between nodes is answered by the fixture's stand-in (<see cref="SnapshotCloudFixture"/>).
/// </summary>
[Collection(SnapshotCloudCollection.Name)]
public sealed class CreateFromSnapshotTests(SnapshotCloudFixture cloud) : IDisposable
{
    private readonly AgentClients _agents = new(cloud);

    [Fact]
    public async Task A_vm_placed_on_another_node_pulls_the_export_from_the_snapshots_node()
    {
        using var tenant = await cloud.CreateTenantAsync("clonefar");
        var (sourceVm, snapshotId, holder) = await SnapshotOnAsync(tenant, "far");
        var other = Other(holder);

        var done = await CreateFromAsync(tenant, snapshotId, "far-clone", cordon: holder);

        Assert.True(done.Str("state") == "SUCCEEDED", done.ToString());
        var (_, clone) = await cloud.Http.GetJsonAsync($"/v1/vms/{done.Str("targetId")}");
        Assert.Equal(("RUNNING", other), (clone.Str("state"), clone.Str("node")));
        var image = $"snap-{Guid.Parse(snapshotId):N}";
        var (node, pull) = Assert.Single(cloud.NodePulls, p => p.Request.ImageId == image);
        Assert.Equal(NodeNumber(other), node);
        Assert.Equal("qcow2", pull.Format);
        Assert.Equal(cloud.AgentUrls[NodeNumber(holder) - 1].ToString().TrimEnd('/'), pull.SourceNode.TrimEnd('/'));
        Assert.Equal(await cloud.QueryAsync("SELECT export_sha256 FROM snapshots WHERE id = @id", ("id", Guid.Parse(snapshotId))), pull.Sha256);
        Assert.Equal(await cloud.ScalarAsync("SELECT export_size_bytes FROM snapshots WHERE id = @id", ("id", Guid.Parse(snapshotId))), pull.SizeBytes);
        Assert.NotNull(await GuestAsync(other, done.Str("targetId")));
        Assert.Equal(2, await cloud.ScalarAsync("SELECT used_instances FROM tenants WHERE id = @p", ("p", tenant.Id)));
        await DeleteAsync(tenant, done.Str("targetId"), sourceVm);
    }

    [Fact]
    public async Task A_vm_the_scheduler_places_on_the_snapshots_node_needs_no_pull()
    {
        using var tenant = await cloud.CreateTenantAsync("clonenear");
        var (sourceVm, snapshotId, holder) = await SnapshotOnAsync(tenant, "near");

        var done = await CreateFromAsync(tenant, snapshotId, "near-clone", cordon: Other(holder));

        Assert.True(done.Str("state") == "SUCCEEDED", done.ToString());
        Assert.Equal(holder, (await cloud.Http.GetJsonAsync($"/v1/vms/{done.Str("targetId")}")).Body.Str("node"));
        Assert.DoesNotContain(cloud.NodePulls, p => p.Request.ImageId == $"snap-{Guid.Parse(snapshotId):N}");
        Assert.NotNull(await GuestAsync(holder, done.Str("targetId")));
        await DeleteAsync(tenant, done.Str("targetId"), sourceVm);
    }

    [Fact]
    public async Task A_node_that_cannot_pull_the_export_fails_the_create_and_gives_the_claim_and_quota_back()
    {
        using var tenant = await cloud.CreateTenantAsync("clonenopull");
        var (sourceVm, snapshotId, holder) = await SnapshotOnAsync(tenant, "nopull");
        var other = Other(holder);
        cloud.RefusePulls[NodeNumber(other)] = true;
        System.Text.Json.JsonElement done;
        try
        {
            done = await CreateFromAsync(tenant, snapshotId, "nopull-clone", cordon: holder);
        }
        finally
        {
            cloud.RefusePulls.TryRemove(NodeNumber(other), out _);
        }

        Assert.Equal(("FAILED", "UNAVAILABLE"), (done.Str("state"), done.Str("errorCode")));
        Assert.DoesNotContain("test-node-", done.Str("errorMessage"), StringComparison.Ordinal);
        Assert.Contains($"Node {other} could not pull the snapshot's disk from node {holder}",
            (await cloud.Http.GetJsonAsync($"/v1/operations/{done.Str("id")}")).Body.Str("errorMessage"), StringComparison.Ordinal);
        var cloneId = Guid.Parse(done.Str("targetId"));
        var (_, clone) = await tenant.Member.GetJsonAsync($"/v1/vms/{cloneId}");
        Assert.Equal(("ERROR", ""), (clone.Str("state"), clone.Str("node")));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = @v", ("v", cloneId)));
        Assert.Equal(1, await cloud.ScalarAsync("SELECT used_instances FROM tenants WHERE id = @p", ("p", tenant.Id)));
        Assert.Null(await GuestAsync(other, cloneId.ToString()));
        Assert.Equal("READY", (await tenant.Member.GetJsonAsync($"/v1/snapshots/{snapshotId}")).Body.Str("state"));
        await DeleteAsync(tenant, cloneId.ToString(), sourceVm);
    }

    [Fact]
    public async Task A_snapshot_whose_node_lost_the_data_fails_the_create_and_becomes_lost()
    {
        using var tenant = await cloud.CreateTenantAsync("clonelost");
        var (sourceVm, snapshotId, holder) = await SnapshotOnAsync(tenant, "lost");
        await (await _agents.ForAsync(holder)).DeleteSnapshotAsync(new AgentV1.SnapshotRef { VmId = Guid.Parse(sourceVm).ToString("N"), SnapshotId = Guid.Parse(snapshotId).ToString("N") });

        var done = await CreateFromAsync(tenant, snapshotId, "lost-clone", cordon: null);

        Assert.Equal(("FAILED", "FAILED_PRECONDITION"), (done.Str("state"), done.Str("errorCode")));
        // The tenant reads its own id of the holder where the operator reads the node's name.
        var host = (await tenant.Member.GetJsonAsync($"/v1/vms/{sourceVm}")).Body.Str("hostId");
        Assert.Equal($"Snapshot {Guid.Parse(snapshotId)} is LOST: node {host} no longer holds its data.", done.Str("errorMessage"));
        Assert.Equal($"Snapshot {Guid.Parse(snapshotId)} is LOST: node {holder} no longer holds its data.",
            (await cloud.Http.GetJsonAsync($"/v1/operations/{done.Str("id")}")).Body.Str("errorMessage"));
        var (_, snapshot) = await tenant.Member.GetJsonAsync($"/v1/snapshots/{snapshotId}");
        Assert.Equal(("LOST", $"node {host} no longer holds its data"), (snapshot.Str("state"), snapshot.Str("error")));
        var cloneId = Guid.Parse(done.Str("targetId"));
        Assert.Equal("ERROR", (await tenant.Member.GetJsonAsync($"/v1/vms/{cloneId}")).Body.Str("state"));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = @v", ("v", cloneId)));
        Assert.Equal(1, await cloud.ScalarAsync("SELECT used_instances FROM tenants WHERE id = @p", ("p", tenant.Id)));
        await DeleteAsync(tenant, cloneId.ToString(), sourceVm);
    }

    /// <summary>A running VM and a READY snapshot of it; the node that holds the snapshot.</summary>
    private async Task<(string VmId, string SnapshotId, string Node)> SnapshotOnAsync(TestTenant tenant, string name)
    {
        var vmId = await tenant.Member.CreateRunningVmAsync(name);
        var created = await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/snapshots", $$"""{"name":"{{name}}"}""");
        Assert.True(created.Str("state") == "SUCCEEDED", created.ToString());
        var (_, list) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}/snapshots");
        var snapshot = list.GetProperty("snapshots")[0];
        return (vmId, snapshot.Str("id"), snapshot.Str("node"));
    }

    /// <summary>Creates a VM from the snapshot, with <paramref name="cordon"/> (a node name) cordoned meanwhile; the finished operation.</summary>
    private async Task<System.Text.Json.JsonElement> CreateFromAsync(TestTenant tenant, string snapshotId, string name, string? cordon)
    {
        if (cordon is not null)
        {
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{cordon}/cordon", "{}")).Status);
        }
        try
        {
            var (status, operation) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"{{name}}","flavor":"{{Tenancy.Nano}}","snapshot":"{{snapshotId}}"}""");
            Assert.True(status == HttpStatusCode.Accepted, operation.ToString());
            Assert.Equal("vm.create_from_snapshot", operation.Str("kind"));
            return await tenant.Member.WaitForOperationAsync(operation.Str("id"));
        }
        finally
        {
            if (cordon is not null)
            {
                Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{cordon}/uncordon", "{}")).Status);
            }
        }
    }

    private static string Other(string node) => node == "test-node-1" ? "test-node-2" : "test-node-1";

    private static int NodeNumber(string node) => node == "test-node-1" ? 1 : 2;

    private async Task<AgentV1.Vm?> GuestAsync(string node, string vmId)
        => (await (await _agents.ForAsync(node)).ListVmsAsync(new AgentV1.ListVmsRequest())).Vms.SingleOrDefault(v => v.VmId == Guid.Parse(vmId).ToString("N"));

    private static async Task DeleteAsync(TestTenant tenant, params string[] vmIds)
    {
        foreach (var vmId in vmIds)
        {
            Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        }
    }

    public void Dispose() => _agents.Dispose();
}
