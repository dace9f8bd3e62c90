using System.Net;
using Cloud.Agent.Qemu.Tests.Support;
using Cloud.Controller.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Tests;

/// <summary>
/// A VM's snapshots survive every path that moves it, end to end on two QEMU nodes: an operator's
/// migration, a drain, a resize that moves, and a stopped VM's move. The guest is Linux, counting
/// on its serial console. After each move the snapshot is still READY, its files (disk and
/// memory) are on the VM's new node and nowhere else, and its restore there turns the guest's
/// counter back to where it was when the snapshot was taken.
/// </summary>
[Collection(ResizeCloudCollection.Name)]
public sealed class SnapshotMoveTests(ResizeCloudFixture cloud)
{
    private const string LinuxImage = LinuxImages.Counter;
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);

    private readonly AgentClients _agents = new(cloud);

    [Fact]
    public async Task A_memory_snapshot_survives_an_operators_migration_restores_on_the_new_node_and_a_vm_made_from_it_runs()
    {
        using var tenant = await cloud.CreateTenantAsync("snapmig");
        var taken = await CountingVmWithSnapshotAsync(tenant, "snapmig");

        var moved = await cloud.Http.RunLongAsync($"/v1/vms/{taken.VmId}/migrate", "{}");

        Assert.True(moved.Str("state") == "SUCCEEDED", moved.ToString());
        var target = await MovedFromAsync(tenant, taken);
        await AssertCounterGoesBackAsync(tenant, taken, target, t => t.Tick >= taken.After + 6);

        // The snapshot's node is cordoned: the clone goes to the other one, which pulls the snapshot's export from it.
        Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{target}/cordon", "{}")).Status);
        string cloneId;
        try
        {
            var (status, operation) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"snapmig-clone","flavor":"{{ResizeMoves.Small}}","snapshot":"{{taken.SnapshotId}}"}""");
            Assert.Equal(HttpStatusCode.Accepted, status);
            var created = await tenant.Member.WaitForOperationAsync(operation.Str("id"));
            Assert.True(created.Str("state") == "SUCCEEDED", created.ToString());
            cloneId = operation.Str("targetId");
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{target}/uncordon", "{}")).Status);
        }
        Assert.Equal(taken.Node, await NodeOfAsync(cloneId));
        var clone = await ResizeMoves.GuestAsync(await _agents.ForAsync(taken.Node), cloneId);
        Assert.Equal(AgentV1.VmState.Running, clone?.State);

        await DeleteAsync(tenant, taken.VmId, cloneId);
    }

    [Fact]
    public async Task A_memory_snapshot_survives_a_drain_and_restores_on_the_node_the_vm_went_to()
    {
        using var tenant = await cloud.CreateTenantAsync("snapdrain");
        var taken = await CountingVmWithSnapshotAsync(tenant, "snapdrain");
        try
        {
            var drained = await cloud.Http.RunLongAsync($"/v1/nodes/{taken.Node}/drain", """{"maxParallel":1}""");
            Assert.True(drained.Str("state") == "SUCCEEDED", drained.ToString());
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{taken.Node}/uncordon", "{}")).Status);
        }
        var target = await MovedFromAsync(tenant, taken);
        await AssertCounterGoesBackAsync(tenant, taken, target, t => t.Tick >= taken.After + 6);
        await DeleteAsync(tenant, taken.VmId);
    }

    /// <summary>The VM grew on its way (256 MiB to 1 GiB): the restored guest gets its memory back as it was, then the rest plugged in again.</summary>
    [Fact]
    public async Task A_memory_snapshot_survives_a_resize_that_moves_and_restores_into_the_larger_vm()
    {
        using var tenant = await cloud.CreateTenantAsync("snapgrow");
        var taken = await CountingVmWithSnapshotAsync(tenant, "snapgrow");
        var fillerId = await ResizeMoves.FillAsync(cloud, taken.Node, "snapgrow-filler");

        var resized = await tenant.Member.RunLongAsync($"/v1/vms/{taken.VmId}/resize", $$"""{"flavor":"{{ResizeMoves.Large}}"}""");

        Assert.True(resized.Str("state") == "SUCCEEDED", resized.ToString());
        var target = await MovedFromAsync(tenant, taken);
        var restored = await AssertCounterGoesBackAsync(tenant, taken, target, t => t.Tick >= taken.After + 6);
        Assert.Equal(256, restored.MemoryLayout.BootMemoryMb);
        Assert.Equal(1024, restored.MemoryLayout.BootMemoryMb + restored.MemoryLayout.Dimms.Sum(d => d.SizeMb));
        await DeleteAsync(tenant, taken.VmId);
        Assert.Equal("SUCCEEDED", (await cloud.Http.RunAsync(HttpMethod.Delete, $"/v1/vms/{fillerId}")).Str("state"));
    }

    /// <summary>Snapshot taken running, VM stopped, moved stopped, started afresh there: the snapshot brings back the guest it had been.</summary>
    [Fact]
    public async Task A_memory_snapshot_of_a_vm_moved_while_stopped_restores_once_it_runs_on_the_new_node()
    {
        using var tenant = await cloud.CreateTenantAsync("snapcold");
        var taken = await CountingVmWithSnapshotAsync(tenant, "snapcold");
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{taken.VmId}/stop", """{"force":true}""")).Str("state"));

        var moved = await cloud.Http.RunLongAsync($"/v1/vms/{taken.VmId}/migrate", "{}");

        Assert.True(moved.Str("state") == "SUCCEEDED", moved.ToString());
        var target = await MovedFromAsync(tenant, taken);
        Assert.Equal("STOPPED", (await tenant.Member.GetJsonAsync($"/v1/vms/{taken.VmId}")).Body.Str("state"));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{taken.VmId}/start")).Str("state"));
        // A fresh boot: its counter starts over, below where the snapshot was taken.
        await AssertCounterGoesBackAsync(tenant, taken, target, t => t.Tick >= 1);
        await DeleteAsync(tenant, taken.VmId);
    }

    /// <summary>
    /// A snapshot whose data the source no longer has whole cannot reach the target: the move is
    /// called off before the VM goes, with a clear error, and the VM stays with its snapshots.
    /// </summary>
    [Fact]
    public async Task A_move_whose_target_did_not_take_every_snapshot_in_is_called_off_and_the_vm_stays_with_them()
    {
        using var tenant = await cloud.CreateTenantAsync("snapkeep");
        await ResizeMoves.EnsureFlavorsAsync(cloud);
        var vmId = await tenant.Member.CreateRunningVmAsync("snapkeep", ResizeMoves.Small);
        var source = await NodeOfAsync(vmId);
        var whole = await SnapshotAsync(tenant, vmId, "whole");
        var broken = await SnapshotAsync(tenant, vmId, "broken");
        File.Delete(Path.Combine(cloud.NodeVmDirectory(source, vmId), "snapshots", Guid.Parse(broken).ToString("N"), "memory.state"));

        var moved = await cloud.Http.RunLongAsync($"/v1/vms/{vmId}/migrate", "{}");

        Assert.Equal(("FAILED", "FAILED_PRECONDITION"), (moved.Str("state"), moved.Str("errorCode")));
        Assert.Contains(broken, moved.Str("errorMessage"), StringComparison.Ordinal);
        Assert.Contains("stays where it is", moved.Str("errorMessage"), StringComparison.Ordinal);
        Assert.Equal(source, await NodeOfAsync(vmId));
        Assert.Equal("RUNNING", (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("state"));
        var other = source == "qemu-node-1" ? "qemu-node-2" : "qemu-node-1";
        Assert.Null(await ResizeMoves.GuestAsync(await _agents.ForAsync(other), vmId));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM consumers WHERE kind = 'migration'"));
        Assert.Equal("READY", (await tenant.Member.GetJsonAsync($"/v1/snapshots/{whole}")).Body.Str("state"));
        // The audit then tells the truth about the one whose data is gone, and its restore says why it cannot work.
        await cloud.ControllerServices.GetRequiredService<Cloud.Controller.Snapshots.SnapshotAudit>().AuditOnceAsync(CancellationToken.None);
        var (_, lost) = await cloud.Http.GetJsonAsync($"/v1/snapshots/{broken}");
        Assert.Equal(("LOST", source), (lost.Str("state"), lost.Str("node")));
        var (refusedStatus, refused) = await tenant.Member.PostAsync($"/v1/snapshots/{broken}/restore", "{}");
        Assert.Equal(HttpStatusCode.BadRequest, refusedStatus);
        Assert.Contains("LOST", refused.Str("detail"), StringComparison.Ordinal);
        var before = await ResizeMoves.GuestAsync(await _agents.ForAsync(source), vmId);
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/snapshots/{whole}/restore")).Str("state"));
        Assert.NotEqual(before!.Pid, (await ResizeMoves.GuestAsync(await _agents.ForAsync(source), vmId))!.Pid);
        await DeleteAsync(tenant, vmId);
    }

    /// <summary>A Linux VM with a memory snapshot, and the guest's counter just before and just after the snapshot was taken.</summary>
    private sealed record Snapshotted(string VmId, string Node, string SnapshotId, long Before, long After);

    /// <summary>A running Linux VM of the small flavor, counting; a memory snapshot of it once it has counted a while.</summary>
    private async Task<Snapshotted> CountingVmWithSnapshotAsync(TestTenant tenant, string name)
    {
        await ResizeMoves.EnsureFlavorsAsync(cloud);
        await LinuxImageAsync(tenant);
        var (status, operation) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"{{name}}","flavor":"{{ResizeMoves.Small}}","image":"{{LinuxImage}}"}""");
        Assert.Equal(HttpStatusCode.Accepted, status);
        var created = await tenant.Member.WaitForOperationAsync(operation.Str("id"));
        Assert.True(created.Str("state") == "SUCCEEDED", created.ToString());
        var vmId = operation.Str("targetId");
        var node = await NodeOfAsync(vmId);
        var log = SerialLog(node, vmId);
        await SerialConsole.WaitForAsync(log, t => t.Tick >= 6, Boot);
        var before = SerialConsole.Ticks(log)[^1].Tick;
        var snapshotId = await SnapshotAsync(tenant, vmId, "counting");
        return new Snapshotted(vmId, node, snapshotId, before, SerialConsole.Ticks(log)[^1].Tick);
    }

    private Task LinuxImageAsync(TestTenant tenant) => cloud.SeedAsync(tenant.Id);

    private static async Task<string> SnapshotAsync(TestTenant tenant, string vmId, string name)
    {
        var taken = await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/snapshots", $$"""{"name":"{{name}}"}""");
        Assert.True(taken.Str("state") == "SUCCEEDED", taken.ToString());
        var (_, list) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/snapshots");
        var snapshot = list.GetProperty("snapshots").EnumerateArray().Single(s => s.Str("name") == name);
        Assert.True(snapshot.GetProperty("includesMemory").GetBoolean());
        return snapshot.Str("id");
    }

    /// <summary>The VM is on another node now, and the one it left keeps nothing of it; that node.</summary>
    private async Task<string> MovedFromAsync(TestTenant tenant, Snapshotted taken)
    {
        var target = await NodeOfAsync(taken.VmId);
        Assert.NotEqual(taken.Node, target);
        Assert.Null(await ResizeMoves.GuestAsync(await _agents.ForAsync(taken.Node), taken.VmId));
        Assert.False(Directory.Exists(cloud.NodeVmDirectory(taken.Node, taken.VmId)));
        return target;
    }

    /// <summary>
    /// The snapshot is READY and its files are on <paramref name="node"/>. Once the guest there has
    /// printed what <paramref name="counted"/> waits for, the restore starts a new QEMU from the
    /// saved memory, and the guest counts on from where it was at the snapshot. Returns the guest
    /// as its agent reports it after.
    /// </summary>
    private async Task<AgentV1.Vm> AssertCounterGoesBackAsync(TestTenant tenant, Snapshotted taken, string node, Func<GuestTick, bool> counted)
    {
        var (_, snapshot) = await tenant.Member.GetJsonAsync($"/v1/snapshots/{taken.SnapshotId}");
        Assert.Equal("READY", snapshot.Str("state"));
        var agent = await _agents.ForAsync(node);
        var vmRef = new AgentV1.VmRef { VmId = Guid.Parse(taken.VmId).ToString("N") };
        var held = Assert.Single((await agent.ListSnapshotsAsync(vmRef)).Snapshots, s => s.SnapshotId == Guid.Parse(taken.SnapshotId).ToString("N"));
        Assert.Equal(["disk.qcow2", "memory.state"], held.Files.Select(f => f.Name).Order());
        var log = SerialLog(node, taken.VmId);
        await SerialConsole.WaitForAsync(log, counted, Boot);
        var offset = SerialConsole.Length(log);
        var before = await ResizeMoves.GuestAsync(agent, taken.VmId);

        var restore = await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/snapshots/{taken.SnapshotId}/restore");

        Assert.True(restore.Str("state") == "SUCCEEDED", restore.ToString());
        var after = await ResizeMoves.GuestAsync(agent, taken.VmId);
        Assert.Equal(AgentV1.VmState.Running, after?.State);
        Assert.NotEqual(before!.Pid, after!.Pid);
        // The old guest may still print a tick or two past the offset before it is stopped; those
        // are all past taken.After + 6, so the first tick at or under taken.After + 2 is the
        // restored guest's, and it must not have gone back further than the snapshot.
        var first = await SerialConsole.WaitForAsync(log, t => t.Tick <= taken.After + 2, Boot, offset);
        Assert.True(first.Tick >= taken.Before, $"The restored guest counted from {first.Tick}, before the snapshot's {taken.Before}.");
        Assert.Equal(node, await NodeOfAsync(taken.VmId));
        return after;
    }

    private string SerialLog(string node, string vmId) => Path.Combine(cloud.NodeVmDirectory(node, vmId), "serial.log");

    private async Task<string> NodeOfAsync(string vmId) => (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");

    private static async Task DeleteAsync(TestTenant tenant, params string[] vmIds)
    {
        foreach (var vmId in vmIds)
        {
            Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        }
    }
}
