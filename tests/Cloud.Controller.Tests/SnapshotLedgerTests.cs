using System.Net;
using Cloud.Controller.Snapshots;
using Cloud.Controller.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Tests;

/// <summary>
/// The ledger records which node holds each snapshot's data, moves that record with the VM,
/// and tells the truth when the data is gone: LOST with its reason in the API and cloudctl,
/// restore and create-from refused. Against fake agents, which report the snapshots they hold.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class SnapshotLedgerTests(CloudFixture cloud) : IDisposable
{
    private readonly AgentClients _agents = new(cloud);
    private readonly List<string> _files = [];

    [Fact]
    public async Task A_ready_snapshot_records_its_vms_node_and_follows_the_vm_when_it_migrates()
    {
        using var tenant = await cloud.CreateTenantAsync("snapfollow");
        var vmId = await tenant.Member.CreateRunningVmAsync("follower");
        var snapshotId = await SnapshotAsync(tenant, vmId, "before-move");
        var source = (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");
        var target = source == "test-node-1" ? "test-node-2" : "test-node-1";

        var (_, snapshot) = await cloud.Http.GetJsonAsync($"/v1/snapshots/{snapshotId}");
        Assert.Equal(("READY", source), (snapshot.Str("state"), snapshot.Str("node")));
        Assert.Equal(source, await NodeOfAsync(snapshotId));

        var migrated = await cloud.Http.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/migrate", $$"""{"node":"{{target}}"}""");
        Assert.True(migrated.Str("state") == "SUCCEEDED", migrated.ToString());

        (_, snapshot) = await cloud.Http.GetJsonAsync($"/v1/snapshots/{snapshotId}");
        Assert.Equal(("READY", target), (snapshot.Str("state"), snapshot.Str("node")));
        Assert.Equal(target, await NodeOfAsync(snapshotId));
        // The destination holds the data and says so; the source no longer has the VM.
        var arrived = await GuestAsync(target, vmId);
        Assert.Contains(Guid.Parse(snapshotId).ToString("N"), arrived!.SnapshotIds);
        Assert.Null(await GuestAsync(source, vmId));
        var restored = await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/snapshots/{snapshotId}/restore");
        Assert.True(restored.Str("state") == "SUCCEEDED", restored.ToString());
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    [Fact]
    public async Task A_restore_whose_node_lost_the_data_marks_the_snapshot_lost_and_later_requests_are_refused()
    {
        using var tenant = await cloud.CreateTenantAsync("snaplost");
        var vmId = await tenant.Member.CreateRunningVmAsync("forgetful");
        var snapshotId = await SnapshotAsync(tenant, vmId, "doomed");
        var node = (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");
        // The node loses the data behind the controller's back.
        await (await _agents.ForAsync(node)).DeleteSnapshotAsync(new AgentV1.SnapshotRef { VmId = Guid.Parse(vmId).ToString("N"), SnapshotId = Guid.Parse(snapshotId).ToString("N") });

        var failed = await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/snapshots/{snapshotId}/restore");
        // The tenant reads its own id of the node where the operator reads the node's name.
        var host = (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("hostId");

        Assert.Equal(("FAILED", "FAILED_PRECONDITION"), (failed.Str("state"), failed.Str("errorCode")));
        Assert.Contains($"is LOST: node {host} no longer holds its data", failed.Str("errorMessage"), StringComparison.Ordinal);
        Assert.Contains($"is LOST: node {node} no longer holds its data",
            (await cloud.Http.GetJsonAsync($"/v1/operations/{failed.Str("id")}")).Body.Str("errorMessage"), StringComparison.Ordinal);
        var (_, snapshot) = await tenant.Member.GetJsonAsync($"/v1/snapshots/{snapshotId}");
        Assert.Equal("LOST", snapshot.Str("state"));
        Assert.Equal($"node {host} no longer holds its data", snapshot.Str("error"));
        Assert.Equal("RUNNING", (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("state"));

        // From now on the refusal comes at request time, with the reason, and no operation starts.
        var (status, problem) = await tenant.Member.PostAsync($"/v1/snapshots/{snapshotId}/restore", "{}");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("FAILED_PRECONDITION", problem.Str("code"));
        Assert.Contains($"is LOST (node {host} no longer holds its data)", problem.Str("detail"), StringComparison.Ordinal);
        (status, problem) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"from-lost","flavor":"{{Tenancy.Nano}}","snapshot":"{{snapshotId}}"}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("is LOST (", problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE name = 'from-lost' AND project_id = @p", ("p", tenant.Id)));

        // cloudctl shows the state, the host (the tenant's id of it, never the node) and the reason.
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, tenant.MemberToken));
        var (exit, table) = await Cloudctl.RunAsync(config, "snapshot", "get", snapshotId);
        Assert.Equal(0, exit);
        var row = table.Split('\n').Single(l => l.Contains(snapshotId, StringComparison.Ordinal));
        Assert.Contains("LOST", row, StringComparison.Ordinal);
        Assert.Contains(host[..12], row, StringComparison.Ordinal);
        Assert.DoesNotContain(node, row, StringComparison.Ordinal);
        Assert.Contains("no longer holds its data", row, StringComparison.Ordinal);

        // A LOST snapshot is deleted like any other, and gives its quota back.
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/snapshots/{snapshotId}")).Str("state"));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT used_snapshots FROM tenants WHERE id = @p", ("p", tenant.Id)));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    [Fact]
    public async Task The_audit_marks_a_snapshot_its_node_no_longer_holds_lost_and_ready_again_when_the_data_is_back()
    {
        using var tenant = await cloud.CreateTenantAsync("snapaudit");
        var vmId = await tenant.Member.CreateRunningVmAsync("audited");
        var keptId = await SnapshotAsync(tenant, vmId, "kept");
        var goneId = await SnapshotAsync(tenant, vmId, "gone");
        var node = (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");
        var agent = await _agents.ForAsync(node);
        var audit = cloud.ControllerServices.GetRequiredService<SnapshotAudit>();
        var gone = new AgentV1.SnapshotRef { VmId = Guid.Parse(vmId).ToString("N"), SnapshotId = Guid.Parse(goneId).ToString("N") };

        // All is as the ledger says: nothing changes.
        await audit.AuditOnceAsync(CancellationToken.None);
        Assert.Equal(("READY", "READY"), (await StateAsync(tenant, keptId), await StateAsync(tenant, goneId)));

        await agent.DeleteSnapshotAsync(gone);
        var round = await audit.AuditOnceAsync(CancellationToken.None);

        Assert.True(round.Lost >= 1, round.ToString());
        Assert.Equal(("READY", "LOST"), (await StateAsync(tenant, keptId), await StateAsync(tenant, goneId)));
        Assert.Equal($"node {node} does not hold its data", (await cloud.Http.GetJsonAsync($"/v1/snapshots/{goneId}")).Body.Str("error"));

        // The node has the data again (a node back from an outage): READY, with no reason left.
        await agent.CreateSnapshotAsync(new AgentV1.CreateSnapshotRequest { VmId = gone.VmId, SnapshotId = gone.SnapshotId, Name = "gone" });
        round = await audit.AuditOnceAsync(CancellationToken.None);

        Assert.True(round.Found >= 1, round.ToString());
        var (_, snapshot) = await tenant.Member.GetJsonAsync($"/v1/snapshots/{goneId}");
        Assert.Equal(("READY", ""), (snapshot.Str("state"), snapshot.Str("error")));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/snapshots/{goneId}/restore")).Str("state"));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    private static async Task<string> StateAsync(TestTenant tenant, string snapshotId)
        => (await tenant.Member.GetJsonAsync($"/v1/snapshots/{snapshotId}")).Body.Str("state");

    private async Task<string> SnapshotAsync(TestTenant tenant, string vmId, string name)
    {
        var created = await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/snapshots", $$"""{"name":"{{name}}"}""");
        Assert.True(created.Str("state") == "SUCCEEDED", created.ToString());
        var (_, list) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/snapshots");
        return list.GetProperty("snapshots").EnumerateArray().Single(s => s.Str("name") == name).Str("id");
    }

    private async Task<string?> NodeOfAsync(string snapshotId)
        => (string?)await cloud.QueryAsync("SELECT n.name FROM snapshots s JOIN nodes n ON n.id = s.node_id WHERE s.id = @id", ("id", Guid.Parse(snapshotId)));

    private async Task<AgentV1.Vm?> GuestAsync(string node, string vmId)
        => (await (await _agents.ForAsync(node)).ListVmsAsync(new AgentV1.ListVmsRequest())).Vms.SingleOrDefault(v => v.VmId == Guid.Parse(vmId).ToString("N"));

    private string Track(string path)
    {
        _files.Add(path);
        return path;
    }

    public void Dispose()
    {
        _agents.Dispose();
        foreach (var file in _files)
        {
            File.Delete(file);
        }
    }
}
