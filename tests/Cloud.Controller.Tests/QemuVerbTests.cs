using System.Net;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Tests;

/// <summary>
/// Every VM verb end to end, through REST and through gRPC, to agents on the QEMU backend
/// (qemu-system-x86_64 under TCG): what the API says is checked against what the agent's QEMU
/// actually runs.
/// </summary>
[Collection(QemuCloudCollection.Name)]
public sealed class QemuVerbTests(QemuCloudFixture cloud) : IDisposable
{
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();
    private readonly AgentClients _agents = new(cloud);

    [Fact]
    public async Task Rest_create_stop_start_reboot_snapshot_restore_resize_and_delete_drive_qemu()
    {
        using var tenant = await cloud.CreateTenantAsync("qemu");
        var (status, created) = await tenant.Member.PostAsync("/v1/vms",
            """{"name":"guest","flavor":"m1.tiny","labels":{"app":"e2e"},"userData":"#cloud-config\nhostname: guest\n"}""");
        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.Equal("SUCCEEDED", (await tenant.Member.WaitForOperationAsync(created.Str("id"))).Str("state"));
        var vmId = created.Str("targetId");
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal("RUNNING", vm.Str("state"));
        Assert.Equal("e2e", vm.GetProperty("labels").GetProperty("app").GetString());
        var agent = await _agents.ForAsync(vm.Str("node"));
        var guest = await GuestAsync(agent, vmId);
        Assert.Equal(AgentV1.VmState.Running, guest.State);
        Assert.True(guest.Pid > 0);

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/stop", """{"force":true}""")).Str("state"));
        Assert.Equal("STOPPED", (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("state"));
        Assert.Equal(AgentV1.VmState.Stopped, (await GuestAsync(agent, vmId)).State);

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/start")).Str("state"));
        var started = await GuestAsync(agent, vmId);
        Assert.Equal(AgentV1.VmState.Running, started.State);
        Assert.NotEqual(guest.Pid, started.Pid);

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/reboot")).Str("state"));
        // A reboot resets the guest inside the same QEMU.
        Assert.Equal(started.Pid, (await GuestAsync(agent, vmId)).Pid);

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/snapshots", """{"name":"before"}""")).Str("state"));
        var (_, snapshots) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/snapshots");
        var snapshot = snapshots.GetProperty("snapshots")[0];
        Assert.Equal("READY", snapshot.Str("state"));
        Assert.True(snapshot.GetProperty("includesMemory").GetBoolean());
        var onNode = await agent.ListSnapshotsAsync(new AgentV1.VmRef { VmId = Guid.Parse(vmId).ToString("N") });
        Assert.Equal([Guid.Parse(snapshot.Str("id")).ToString("N")], onNode.Snapshots.Select(s => s.SnapshotId));

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/snapshots/{snapshot.Str("id")}/restore")).Str("state"));
        Assert.Equal(AgentV1.VmState.Running, (await GuestAsync(agent, vmId)).State);

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/resize", """{"flavor":"m1.small"}""")).Str("state"));
        var resized = await GuestAsync(agent, vmId);
        Assert.Equal(2048, resized.Shape.MemoryMb);
        Assert.Equal(20, resized.Shape.DiskGb);
        Assert.Equal(AgentV1.VmState.Running, resized.State);
        var (_, after) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal("m1.small", after.Str("flavor"));
        Assert.Equal(2048, await cloud.ScalarAsync("SELECT used FROM allocations WHERE consumer_id = @v AND resource_class = 'MEMORY_MB'", ("v", Guid.Parse(vmId))));

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/snapshots/{snapshot.Str("id")}")).Str("state"));
        Assert.Empty((await agent.ListSnapshotsAsync(new AgentV1.VmRef { VmId = Guid.Parse(vmId).ToString("N") })).Snapshots);

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        Assert.DoesNotContain((await agent.ListVmsAsync(new AgentV1.ListVmsRequest())).Vms, v => v.VmId == Guid.Parse(vmId).ToString("N"));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT used_instances + used_snapshots FROM tenants WHERE id = @p", ("p", tenant.Id)));
    }

    [Fact]
    public async Task Grpc_create_stop_start_reboot_snapshot_and_delete_drive_qemu()
    {
        using var tenant = await cloud.CreateTenantAsync("qgrpc");
        var compute = new Compute.ComputeClient(_channel);
        var options = Tenancy.Bearer(tenant.MemberToken);
        var create = new CreateVmRequest { Name = "grpc-guest", Flavor = "m1.tiny", UserData = "hello", Labels = { ["via"] = "grpc" } };

        var vmId = (await FinishAsync(compute, await compute.CreateVmAsync(create, options), options)).TargetId;
        var vm = await compute.GetVmAsync(new GetVmRequest { Id = vmId }, options);
        Assert.Equal("RUNNING", vm.State);
        // Tenants see a host id, not the node: the operator's view names it.
        var agent = await _agents.ForAsync((await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node"));

        await FinishAsync(compute, await compute.StopVmAsync(new StopVmRequest { Id = vmId, Force = true }, options), options);
        Assert.Equal(AgentV1.VmState.Stopped, (await GuestAsync(agent, vmId)).State);
        Assert.Equal("STOPPED", (await compute.GetVmAsync(new GetVmRequest { Id = vmId }, options)).State);

        await FinishAsync(compute, await compute.StartVmAsync(new VmActionRequest { Id = vmId }, options), options);
        Assert.Equal(AgentV1.VmState.Running, (await GuestAsync(agent, vmId)).State);

        await FinishAsync(compute, await compute.RebootVmAsync(new VmActionRequest { Id = vmId }, options), options);
        await FinishAsync(compute, await compute.CreateSnapshotAsync(new CreateSnapshotRequest { VmId = vmId, Name = "grpc-snap" }, options), options);
        var snapshot = (await compute.ListSnapshotsAsync(new ListSnapshotsRequest { VmId = vmId }, options)).Snapshots.Single();
        Assert.Equal("READY", snapshot.State);
        await FinishAsync(compute, await compute.RestoreSnapshotAsync(new RestoreSnapshotRequest { Id = snapshot.Id }, options), options);

        await FinishAsync(compute, await compute.DeleteVmAsync(new DeleteVmRequest { Id = vmId }, options), options);
        Assert.DoesNotContain((await agent.ListVmsAsync(new AgentV1.ListVmsRequest())).Vms, v => v.VmId == Guid.Parse(vmId).ToString("N"));
        var gone = await Assert.ThrowsAsync<RpcException>(() => compute.GetSnapshotAsync(new GetSnapshotRequest { Id = snapshot.Id }, options).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task An_operator_live_migrates_a_tenants_vm_and_the_claims_follow_it()
    {
        using var tenant = await cloud.CreateTenantAsync("qmigrate");
        var vmId = await tenant.Member.CreateRunningVmAsync("traveller", flavor: "m1.tiny");
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        var source = vm.Str("node");
        var target = source == "qemu-node-1" ? "qemu-node-2" : "qemu-node-1";
        var sourceAgent = await _agents.ForAsync(source);
        var targetAgent = await _agents.ForAsync(target);
        var body = $$"""{"node":"{{target}}"}""";

        var (denied, problem) = await tenant.Member.PostAsync($"/v1/vms/{vmId}/migrate", body);
        Assert.Equal(HttpStatusCode.Forbidden, denied);
        Assert.Equal("PERMISSION_DENIED", problem.Str("code"));

        var migrated = await cloud.Http.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/migrate", body);

        Assert.True(migrated.Str("state") == "SUCCEEDED", migrated.ToString());
        Assert.Equal(100, migrated.GetProperty("progress").GetInt32());
        Assert.Equal(target, (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node"));
        Assert.Equal(AgentV1.VmState.Running, (await GuestAsync(targetAgent, vmId)).State);
        Assert.DoesNotContain((await sourceAgent.ListVmsAsync(new AgentV1.ListVmsRequest())).Vms, v => v.VmId == Guid.Parse(vmId).ToString("N"));
        Assert.Equal(3, await cloud.ScalarAsync(
            "SELECT count(*) FROM allocations a JOIN nodes n ON n.id = a.node_id WHERE a.consumer_id = @v AND n.name = @t", ("v", Guid.Parse(vmId)), ("t", target)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM consumers WHERE kind = 'migration'"));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    [Fact]
    public async Task A_resize_within_the_vms_bounds_is_live_and_its_hot_added_memory_migrates_with_it()
    {
        using var tenant = await cloud.CreateTenantAsync("qlive");
        var (flavorStatus, _) = await cloud.Http.PostAsync("/v1/flavors", """{"name":"live.grow","vcpus":2,"memoryMb":"1024","diskGb":"1","isPublic":true}""");
        Assert.True(flavorStatus is HttpStatusCode.OK or HttpStatusCode.Created or HttpStatusCode.Conflict, flavorStatus.ToString());
        var vmId = await tenant.Member.CreateRunningVmAsync("grower", flavor: "m1.tiny");
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        var source = vm.Str("node");
        var target = source == "qemu-node-1" ? "qemu-node-2" : "qemu-node-1";
        var sourceAgent = await _agents.ForAsync(source);
        var before = await GuestAsync(sourceAgent, vmId);

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/resize", """{"flavor":"live.grow"}""")).Str("state"));

        // Live: the same QEMU now holds two vCPUs and a 512 MB DIMM next to its 512 MB of boot memory.
        var grown = await GuestAsync(sourceAgent, vmId);
        Assert.Equal(before.Pid, grown.Pid);
        Assert.Equal((2, 1024L), (grown.Shape.Vcpus, grown.Shape.MemoryMb));
        Assert.Equal(512, grown.MemoryLayout.BootMemoryMb);
        Assert.Equal([512L], grown.MemoryLayout.Dimms.Select(d => d.SizeMb));

        var migrated = await cloud.Http.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/migrate", $$"""{"node":"{{target}}"}""");

        Assert.True(migrated.Str("state") == "SUCCEEDED", migrated.ToString());
        var moved = await GuestAsync(await _agents.ForAsync(target), vmId);
        Assert.Equal(AgentV1.VmState.Running, moved.State);
        Assert.Equal((2, 1024L), (moved.Shape.Vcpus, moved.Shape.MemoryMb));
        Assert.Equal(grown.MemoryLayout, moved.MemoryLayout);
        Assert.Equal(1024, await cloud.ScalarAsync(
            "SELECT a.used FROM allocations a JOIN nodes n ON n.id = a.node_id WHERE a.consumer_id = @v AND n.name = @t AND a.resource_class = 'MEMORY_MB'",
            ("v", Guid.Parse(vmId)), ("t", target)));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    [Fact]
    public async Task A_vm_created_from_a_snapshot_starts_from_its_disk_when_placed_on_the_snapshots_node()
    {
        using var tenant = await cloud.CreateTenantAsync("qclone");
        var sourceId = await tenant.Member.CreateRunningVmAsync("original", flavor: "m1.tiny");
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{sourceId}/snapshots", """{"name":"golden"}""")).Str("state"));
        var (_, snapshots) = await cloud.Http.GetJsonAsync($"/v1/vms/{sourceId}/snapshots");
        var snapshotId = snapshots.GetProperty("snapshots")[0].Str("id");
        // The scheduler places a clone like any VM; the other node is cordoned so that this test
        // sees QEMU start from the export on the node that made it (a pull between nodes is
        // tested against fake agents, CreateFromSnapshotTests).
        var (_, nodes) = await cloud.Http.GetJsonAsync("/v1/nodes");
        var holder = snapshots.GetProperty("snapshots")[0].Str("node");
        var other = nodes.GetProperty("nodes").EnumerateArray().Select(n => n.Str("name")).Single(n => n != holder);
        Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{other}/cordon", "{}")).Status);

        System.Text.Json.JsonElement operation;
        try
        {
            HttpStatusCode status;
            (status, operation) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"clone","flavor":"m1.tiny","snapshot":"{{snapshotId}}"}""");
            Assert.Equal(HttpStatusCode.Accepted, status);
            Assert.Equal("vm.create_from_snapshot", operation.Str("kind"));
            var done = await tenant.Member.WaitForOperationAsync(operation.Str("id"));
            Assert.True(done.Str("state") == "SUCCEEDED", done.ToString());
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{other}/uncordon", "{}")).Status);
        }

        var (_, source) = await cloud.Http.GetJsonAsync($"/v1/vms/{sourceId}");
        var (_, clone) = await cloud.Http.GetJsonAsync($"/v1/vms/{operation.Str("targetId")}");
        Assert.Equal("RUNNING", clone.Str("state"));
        Assert.Equal(source.Str("node"), clone.Str("node"));
        Assert.Equal($"snap-{Guid.Parse(snapshotId):N}", clone.Str("image"));
        var agent = await _agents.ForAsync(clone.Str("node"));
        Assert.Equal(AgentV1.VmState.Running, (await GuestAsync(agent, operation.Str("targetId"))).State);
        Assert.Equal(2, await cloud.ScalarAsync("SELECT used_instances FROM tenants WHERE id = @p", ("p", tenant.Id)));

        var (bad, problem) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"both","flavor":"m1.tiny","snapshot":"{{snapshotId}}","image":"x"}""");
        Assert.Equal(HttpStatusCode.BadRequest, bad);
        Assert.Contains("not both", problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{operation.Str("targetId")}")).Str("state"));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{sourceId}")).Str("state"));
    }

    [Fact]
    public async Task An_agent_refusal_fails_the_operation_with_the_agents_code_and_changes_nothing()
    {
        using var tenant = await cloud.CreateTenantAsync("qrefuse");
        // A nano VM has no disk: QEMU cannot hold a snapshot of it.
        var vmId = await tenant.Member.CreateRunningVmAsync("diskless");

        var failed = await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/snapshots", """{"name":"nope"}""");

        Assert.Equal("FAILED", failed.Str("state"));
        Assert.Equal("FAILED_PRECONDITION", failed.Str("errorCode"));
        Assert.Contains("no disk", failed.Str("errorMessage"), StringComparison.Ordinal);
        Assert.Equal(0, await cloud.ScalarAsync("SELECT used_snapshots FROM tenants WHERE id = @p", ("p", tenant.Id)));
        var (_, list) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/snapshots");
        Assert.Equal(0, list.GetProperty("snapshots").GetArrayLength());
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    private static async Task<Operation> FinishAsync(Compute.ComputeClient compute, Operation operation, CallOptions options)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (operation.State is not ("SUCCEEDED" or "FAILED"))
        {
            Assert.True(DateTime.UtcNow < deadline, $"Operation {operation.Id} ({operation.Kind}) is still {operation.State}.");
            await Task.Delay(50);
            operation = await compute.GetOperationAsync(new GetOperationRequest { Id = operation.Id }, options);
        }
        Assert.True(operation.State == "SUCCEEDED", $"{operation.Kind}: {operation.ErrorCode} {operation.ErrorMessage}");
        return operation;
    }

    private static async Task<AgentV1.Vm> GuestAsync(AgentV1.NodeAgent.NodeAgentClient agent, string vmId)
        => (await agent.ListVmsAsync(new AgentV1.ListVmsRequest())).Vms.Single(v => v.VmId == Guid.Parse(vmId).ToString("N"));

    public void Dispose()
    {
        _channel.Dispose();
        _agents.Dispose();
    }
}
