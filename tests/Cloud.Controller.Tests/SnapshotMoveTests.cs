using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Cloud.Controller.Tests.Support;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Tests;

/// <summary>
/// A VM's snapshots survive every path that moves it, end to end on two QEMU nodes: an operator's
/// migration, a drain, a resize that moves, and a stopped VM's move. After each, the snapshot is
/// still READY, its files (disk and memory) are on the VM's new node and nowhere else, and its
/// restore there brings a new QEMU up from the saved memory. The guest's own view of the restore
/// (a counter going back) is checked with a Linux guest in the agent's tests, on the same calls.
/// </summary>
[Collection(ResizeCloudCollection.Name)]
public sealed class SnapshotMoveTests(ResizeCloudFixture cloud)
{
    private readonly AgentClients _agents = new(cloud);

    [Fact]
    public async Task A_memory_snapshot_survives_an_operators_migration_restores_on_the_new_node_and_a_vm_made_from_it_runs()
    {
        using var tenant = await cloud.CreateTenantAsync("snapmig");
        var (vmId, source, snapshotId) = await RunningVmWithSnapshotAsync(tenant, "snapmig");

        var moved = await cloud.Http.RunLongAsync($"/v1/vms/{vmId}/migrate", "{}");

        Assert.True(moved.Str("state") == "SUCCEEDED", moved.ToString());
        var target = await NodeOfAsync(tenant, vmId);
        Assert.NotEqual(source, target);
        await AssertRestoresOnAsync(tenant, vmId, snapshotId, target, source);

        // The snapshot's node is cordoned: the clone goes to the other one, which pulls the snapshot's export from it.
        Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{target}/cordon", "{}")).Status);
        string cloneId;
        try
        {
            var (status, operation) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"snapmig-clone","flavor":"{{ResizeMoves.Small}}","snapshot":"{{snapshotId}}"}""");
            Assert.Equal(HttpStatusCode.Accepted, status);
            var created = await tenant.Member.WaitForOperationAsync(operation.Str("id"));
            Assert.True(created.Str("state") == "SUCCEEDED", created.ToString());
            cloneId = operation.Str("targetId");
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{target}/uncordon", "{}")).Status);
        }
        Assert.Equal(source, await NodeOfAsync(tenant, cloneId));
        var clone = await ResizeMoves.GuestAsync(await _agents.ForAsync(source), cloneId);
        Assert.Equal(AgentV1.VmState.Running, clone?.State);

        await DeleteAsync(tenant, vmId, cloneId);
    }

    [Fact]
    public async Task A_memory_snapshot_survives_a_drain_and_restores_on_the_node_the_vm_went_to()
    {
        using var tenant = await cloud.CreateTenantAsync("snapdrain");
        var (vmId, source, snapshotId) = await RunningVmWithSnapshotAsync(tenant, "snapdrain");
        try
        {
            var drained = await cloud.Http.RunLongAsync($"/v1/nodes/{source}/drain", """{"maxParallel":1}""");
            Assert.True(drained.Str("state") == "SUCCEEDED", drained.ToString());
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{source}/uncordon", "{}")).Status);
        }
        var target = await NodeOfAsync(tenant, vmId);
        Assert.NotEqual(source, target);
        await AssertRestoresOnAsync(tenant, vmId, snapshotId, target, source);
        await DeleteAsync(tenant, vmId);
    }

    /// <summary>The VM grew on its way (256 MiB to 1 GiB): the restored guest gets its memory back as it was, then the rest plugged in again.</summary>
    [Fact]
    public async Task A_memory_snapshot_survives_a_resize_that_moves_and_restores_into_the_larger_vm()
    {
        using var tenant = await cloud.CreateTenantAsync("snapgrow");
        var (vmId, source, other, fillerId) = await ResizeMoves.VmOnAFullNodeAsync(cloud, tenant, "snapgrow");
        var snapshotId = await SnapshotAsync(tenant, vmId, "small");

        var resized = await tenant.Member.RunLongAsync($"/v1/vms/{vmId}/resize", $$"""{"flavor":"{{ResizeMoves.Large}}"}""");

        Assert.True(resized.Str("state") == "SUCCEEDED", resized.ToString());
        Assert.Equal(other, await NodeOfAsync(tenant, vmId));
        var restored = await AssertRestoresOnAsync(tenant, vmId, snapshotId, other, source);
        Assert.Equal(256, restored.MemoryLayout.BootMemoryMb);
        Assert.Equal(1024, restored.MemoryLayout.BootMemoryMb + restored.MemoryLayout.Dimms.Sum(d => d.SizeMb));
        await DeleteAsync(tenant, vmId);
        Assert.Equal("SUCCEEDED", (await cloud.Http.RunAsync(HttpMethod.Delete, $"/v1/vms/{fillerId}")).Str("state"));
    }

    /// <summary>Snapshot taken running, VM stopped, moved stopped: once started on its new node, the snapshot brings its memory back.</summary>
    [Fact]
    public async Task A_memory_snapshot_of_a_vm_moved_while_stopped_restores_once_it_runs_on_the_new_node()
    {
        using var tenant = await cloud.CreateTenantAsync("snapcold");
        var (vmId, source, snapshotId) = await RunningVmWithSnapshotAsync(tenant, "snapcold");
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/stop", """{"force":true}""")).Str("state"));

        var moved = await cloud.Http.RunLongAsync($"/v1/vms/{vmId}/migrate", "{}");

        Assert.True(moved.Str("state") == "SUCCEEDED", moved.ToString());
        var target = await NodeOfAsync(tenant, vmId);
        Assert.NotEqual(source, target);
        Assert.Equal("STOPPED", (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("state"));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/start")).Str("state"));
        await AssertRestoresOnAsync(tenant, vmId, snapshotId, target, source);
        await DeleteAsync(tenant, vmId);
    }

    /// <summary>A running VM of the small flavor with a memory snapshot: the VM, its node, the snapshot.</summary>
    /// <summary>
    /// A snapshot whose data the source no longer has whole cannot reach the target: the move is
    /// called off before the VM goes, with a clear error, and the VM stays with its snapshots.
    /// </summary>
    [Fact]
    public async Task A_move_whose_target_did_not_take_every_snapshot_in_is_called_off_and_the_vm_stays_with_them()
    {
        using var tenant = await cloud.CreateTenantAsync("snapkeep");
        var (vmId, source, whole) = await RunningVmWithSnapshotAsync(tenant, "snapkeep");
        var broken = await SnapshotAsync(tenant, vmId, "broken");
        File.Delete(Path.Combine(cloud.NodeVmDirectory(source, vmId), "snapshots", Guid.Parse(broken).ToString("N"), "memory.state"));

        var moved = await cloud.Http.RunLongAsync($"/v1/vms/{vmId}/migrate", "{}");

        Assert.Equal(("FAILED", "FAILED_PRECONDITION"), (moved.Str("state"), moved.Str("errorCode")));
        Assert.Contains(broken, moved.Str("errorMessage"), StringComparison.Ordinal);
        Assert.Contains("stays where it is", moved.Str("errorMessage"), StringComparison.Ordinal);
        Assert.Equal(source, await NodeOfAsync(tenant, vmId));
        Assert.Equal("RUNNING", (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("state"));
        var other = source == "qemu-node-1" ? "qemu-node-2" : "qemu-node-1";
        Assert.Null(await ResizeMoves.GuestAsync(await _agents.ForAsync(other), vmId));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM consumers WHERE kind = 'migration'"));
        Assert.Equal("READY", (await tenant.Member.GetJsonAsync($"/v1/snapshots/{whole}")).Body.Str("state"));
        // The audit then tells the truth about the one whose data is gone, and its restore says why it cannot work.
        await cloud.ControllerServices.GetRequiredService<Cloud.Controller.Snapshots.SnapshotAudit>().AuditOnceAsync(CancellationToken.None);
        var (_, lost) = await tenant.Member.GetJsonAsync($"/v1/snapshots/{broken}");
        Assert.Equal(("LOST", source), (lost.Str("state"), lost.Str("node")));
        var (refusedStatus, refused) = await tenant.Member.PostAsync($"/v1/snapshots/{broken}/restore", "{}");
        Assert.Equal(HttpStatusCode.BadRequest, refusedStatus);
        Assert.Contains("LOST", refused.Str("detail"), StringComparison.Ordinal);
        var before = await ResizeMoves.GuestAsync(await _agents.ForAsync(source), vmId);
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/snapshots/{whole}/restore")).Str("state"));
        Assert.NotEqual(before!.Pid, (await ResizeMoves.GuestAsync(await _agents.ForAsync(source), vmId))!.Pid);
        await DeleteAsync(tenant, vmId);
    }

    private async Task<(string VmId, string Node, string SnapshotId)> RunningVmWithSnapshotAsync(TestTenant tenant, string name)
    {
        await ResizeMoves.EnsureFlavorsAsync(cloud);
        var vmId = await tenant.Member.CreateRunningVmAsync(name, ResizeMoves.Small);
        return (vmId, await NodeOfAsync(tenant, vmId), await SnapshotAsync(tenant, vmId, "before"));
    }

    private static async Task<string> SnapshotAsync(TestTenant tenant, string vmId, string name)
    {
        var taken = await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/snapshots", $$"""{"name":"{{name}}"}""");
        Assert.True(taken.Str("state") == "SUCCEEDED", taken.ToString());
        var (_, list) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/snapshots");
        var snapshot = list.GetProperty("snapshots").EnumerateArray().Single(s => s.Str("name") == name);
        Assert.True(snapshot.GetProperty("includesMemory").GetBoolean());
        return snapshot.Str("id");
    }

    /// <summary>
    /// The snapshot is READY, its files are on <paramref name="node"/> and the old node keeps
    /// nothing of the VM; its restore starts a new QEMU from the saved memory. Returns the guest as its agent reports it after.
    /// </summary>
    private async Task<AgentV1.Vm> AssertRestoresOnAsync(TestTenant tenant, string vmId, string snapshotId, string node, string oldNode)
    {
        var (_, snapshot) = await tenant.Member.GetJsonAsync($"/v1/snapshots/{snapshotId}");
        Assert.Equal("READY", snapshot.Str("state"));
        var agent = await _agents.ForAsync(node);
        var vmRef = new AgentV1.VmRef { VmId = Guid.Parse(vmId).ToString("N") };
        var held = Assert.Single((await agent.ListSnapshotsAsync(vmRef)).Snapshots, s => s.SnapshotId == Guid.Parse(snapshotId).ToString("N"));
        Assert.Equal(["disk.qcow2", "memory.state"], held.Files.Select(f => f.Name).Order());
        Assert.Null(await ResizeMoves.GuestAsync(await _agents.ForAsync(oldNode), vmId));
        var before = await ResizeMoves.GuestAsync(agent, vmId);
        Assert.Equal(AgentV1.VmState.Running, before?.State);

        var restore = await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/snapshots/{snapshotId}/restore");

        Assert.True(restore.Str("state") == "SUCCEEDED", restore.ToString());
        var after = await ResizeMoves.GuestAsync(agent, vmId);
        Assert.Equal(AgentV1.VmState.Running, after?.State);
        Assert.NotEqual(before!.Pid, after!.Pid);
        Assert.Equal(node, await NodeOfAsync(tenant, vmId));
        return after;
    }

    private static async Task<string> NodeOfAsync(TestTenant tenant, string vmId) => (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");

    private static async Task DeleteAsync(TestTenant tenant, params string[] vmIds)
    {
        foreach (var vmId in vmIds)
        {
            Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        }
    }
}
