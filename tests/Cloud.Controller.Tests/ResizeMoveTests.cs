using System.Net;
using System.Text.Json;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Tests;

/// <summary>The moves' shared arrangement: flavors, a VM on a node that a filler VM makes too full for its next flavor.</summary>
internal static class ResizeMoves
{
    /// <summary>256 MiB and a 1 GB disk: where the VM starts.</summary>
    public const string Small = "rz.small";

    /// <summary>1 GiB and a 2 GB disk: no longer fits beside the filler.</summary>
    public const string Large = "rz.large";

    /// <summary>More memory than any node has.</summary>
    public const string Huge = "rz.huge";

    /// <summary>1280 MiB, the operator's own VM that fills the source.</summary>
    private const string Filler = "rz.filler";

    public static async Task EnsureFlavorsAsync(CloudFixture cloud)
    {
        foreach (var (name, memory, disk) in new[] { (Small, 256, 1), (Large, 1024, 2), (Huge, 3072, 1), (Filler, 1280, 0) })
        {
            var (status, _) = await cloud.Http.PostAsync("/v1/flavors", $$"""{"name":"{{name}}","vcpus":1,"memoryMb":"{{memory}}","diskGb":"{{disk}}","isPublic":true}""");
            Assert.True(status is HttpStatusCode.Created or HttpStatusCode.Conflict, $"flavor {name}: {status}");
        }
    }

    /// <summary>A tenant's running VM of flavor <see cref="Small"/>, on a node the operator's filler VM shares.</summary>
    public static async Task<(string VmId, string Source, string Other, string FillerId)> VmOnAFullNodeAsync(CloudFixture cloud, TestTenant tenant, string name)
    {
        await EnsureFlavorsAsync(cloud);
        var vmId = await tenant.Member.CreateRunningVmAsync(name, Small);
        var source = (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");
        var other = source == "qemu-node-1" ? "qemu-node-2" : "qemu-node-1";
        return (vmId, source, other, await FillAsync(cloud, source, name + "-filler"));
    }

    /// <summary>Puts an operator's VM of 1280 MiB on <paramref name="node"/> (created, then migrated there if placed elsewhere); its id.</summary>
    public static async Task<string> FillAsync(CloudFixture cloud, string node, string name)
    {
        var fillerId = await cloud.Http.CreateRunningVmAsync(name, Filler);
        if ((await cloud.Http.GetJsonAsync($"/v1/vms/{fillerId}")).Body.Str("node") != node)
        {
            var moved = await cloud.Http.RunLongAsync($"/v1/vms/{fillerId}/migrate", $$"""{"node":"{{node}}"}""");
            Assert.True(moved.Str("state") == "SUCCEEDED", moved.ToString());
        }
        return fillerId;
    }

    /// <summary>Posts a verb and polls its operation with a deadline that suits migrations under TCG on a loaded host.</summary>
    public static async Task<JsonElement> RunLongAsync(this HttpClient http, string path, string json)
    {
        var (status, operation) = await http.PostAsync(path, json);
        Assert.True(status == HttpStatusCode.Accepted, $"{path}: {status} {operation}");
        return await WaitAsync(http, operation.Str("id"));
    }

    public static async Task<JsonElement> WaitAsync(HttpClient http, string operationId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(180);
        while (true)
        {
            var (_, operation) = await http.GetJsonAsync($"/v1/operations/{operationId}");
            if (operation.Str("state") is "SUCCEEDED" or "FAILED")
            {
                return operation;
            }
            Assert.True(DateTime.UtcNow < deadline, $"Operation {operationId} is still {operation}.");
            await Task.Delay(100);
        }
    }

    /// <summary>Where the VM's allocations are, as "node:CLASS=used" sorted: the ledger's view of it.</summary>
    public static async Task<string> AllocationsAsync(CloudFixture cloud, string vmId)
        => (string?)await cloud.QueryAsync(
            """
            SELECT string_agg(n.name || ':' || a.resource_class || '=' || a.used, ',' ORDER BY n.name, a.resource_class)
              FROM allocations a JOIN nodes n ON n.id = a.node_id WHERE a.consumer_id = @v
            """, ("v", Guid.Parse(vmId))) ?? "";

    /// <summary>
    /// What a controller that stopped after claiming a move's destination leaves behind: its
    /// resize to <see cref="Large"/> RUNNING under an expired lease, the migration consumer's
    /// claim of the new size on <paramref name="destination"/>, and the tenant charged the
    /// difference. The next sweep of the live controller takes it over; its id.
    /// </summary>
    public static async Task<Guid> LeaveMoveBehindAsync(CloudFixture cloud, TestTenant tenant, string vmId, string destination, Guid? id = null)
    {
        var operationId = id ?? Guid.CreateVersion7();
        await cloud.QueryAsync(
            """
            INSERT INTO operations (id, project_id, kind, target_id, state, progress, request_hash, request, created_at, updated_at, owner, lease_expires_at)
            VALUES (@op, @t, 'vm.resize', @vm, 'RUNNING', 30, '', @request, now(), now(), 'stopped-replica', now() - interval '1 minute');
            INSERT INTO consumers (id, kind, project_id, created_at, generation) VALUES (@op, 'migration', @t, now(), 0);
            INSERT INTO allocations (consumer_id, node_id, resource_class, used)
              SELECT @op, n.id, r.class, r.used FROM nodes n, (VALUES ('VCPU', 1), ('MEMORY_MB', 1024), ('DISK_GB', 2)) AS r(class, used) WHERE n.name = @other;
            UPDATE tenants SET used_memory_mb = used_memory_mb + 768, used_disk_gb = used_disk_gb + 1 WHERE id = @t;
            """,
            ("op", operationId), ("t", tenant.Id), ("vm", vmId), ("other", destination),
            ("request", $$"""{"id":"{{vmId}}","flavor":"{{Large}}"}"""));
        return operationId;
    }

    /// <summary>The VM is where and what it was before a resize that did not happen: row, claims, quota, no migration consumer.</summary>
    public static async Task AssertUnchangedAsync(CloudFixture cloud, TestTenant tenant, string vmId, string source, string allocations, string usage)
    {
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal((source, Small, "RUNNING"), (vm.Str("node"), vm.Str("flavor"), vm.Str("state")));
        Assert.Equal(allocations, await AllocationsAsync(cloud, vmId));
        Assert.Equal(usage, await UsageAsync(cloud, tenant.Id));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM consumers WHERE kind = 'migration'"));
    }

    public static async Task<string> UsageAsync(CloudFixture cloud, string tenant)
        => (string)(await cloud.QueryAsync(
            "SELECT concat_ws('|', used_instances, used_vcpus, used_memory_mb, used_disk_gb) FROM tenants WHERE id = @t", ("t", tenant)))!;


    public static async Task<AgentV1.Vm?> GuestAsync(AgentV1.NodeAgent.NodeAgentClient agent, string vmId)
        => (await agent.ListVmsAsync(new AgentV1.ListVmsRequest())).Vms.SingleOrDefault(v => v.VmId == Guid.Parse(vmId).ToString("N"));
}

/// <summary>
/// Resize that moves the VM, end to end: REST, the real controller and PostgreSQL, two agents on
/// QEMU under TCG on 127.0.0.2 and 127.0.0.3. The VM's node is full, so the new flavor is
/// placed on the other node, the VM live-migrates there with its disk and takes its new shape.
/// </summary>
[Collection(ResizeCloudCollection.Name)]
public sealed class ResizeMoveTests(ResizeCloudFixture cloud) : IDisposable
{
    private readonly AgentClients _agents = new(cloud);

    [Fact]
    public async Task A_running_vm_whose_node_is_full_moves_to_the_other_node_and_runs_there_with_the_new_flavor()
    {
        using var tenant = await cloud.CreateTenantAsync("rzmove");
        var (vmId, source, other, fillerId) = await ResizeMoves.VmOnAFullNodeAsync(cloud, tenant, "grower");
        Assert.Equal($"{source}:DISK_GB=1,{source}:MEMORY_MB=256,{source}:VCPU=1", await ResizeMoves.AllocationsAsync(cloud, vmId));

        var resized = await tenant.Member.RunLongAsync($"/v1/vms/{vmId}/resize", $$"""{"flavor":"{{ResizeMoves.Large}}"}""");

        Assert.True(resized.Str("state") == "SUCCEEDED", resized.ToString());
        Assert.Equal(100, resized.GetProperty("progress").GetInt32());
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal(other, vm.Str("node"));
        Assert.Equal(ResizeMoves.Large, vm.Str("flavor"));
        Assert.Equal("RUNNING", vm.Str("state"));
        var guest = await ResizeMoves.GuestAsync(await _agents.ForAsync(other), vmId);
        Assert.NotNull(guest);
        Assert.Equal(AgentV1.VmState.Running, guest.State);
        Assert.Equal(1024, guest.Shape.MemoryMb);
        Assert.Equal(2, guest.Shape.DiskGb);
        Assert.Null(await ResizeMoves.GuestAsync(await _agents.ForAsync(source), vmId));
        // Exactly one set of allocations, the new flavor's, on the destination; the migration consumer is gone.
        Assert.Equal($"{other}:DISK_GB=2,{other}:MEMORY_MB=1024,{other}:VCPU=1", await ResizeMoves.AllocationsAsync(cloud, vmId));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM consumers WHERE kind = 'migration'"));
        Assert.Equal("1|1|1024|2", await ResizeMoves.UsageAsync(cloud, tenant.Id));

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        Assert.Equal("SUCCEEDED", (await cloud.Http.RunAsync(HttpMethod.Delete, $"/v1/vms/{fillerId}")).Str("state"));
    }

    [Fact]
    public async Task A_stopped_vm_whose_node_is_full_moves_and_stays_stopped_with_the_new_flavor_without_running()
    {
        using var tenant = await cloud.CreateTenantAsync("rzstop");
        var (vmId, source, other, fillerId) = await ResizeMoves.VmOnAFullNodeAsync(cloud, tenant, "sleeper");
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/stop", """{"force":true}""")).Str("state"));
        using var watching = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        var onSource = await StatesAsync(source, vmId, watching.Token);
        var onDestination = await StatesAsync(other, vmId, watching.Token);

        var resized = await tenant.Member.RunLongAsync($"/v1/vms/{vmId}/resize", $$"""{"flavor":"{{ResizeMoves.Large}}"}""");

        Assert.True(resized.Str("state") == "SUCCEEDED", resized.ToString());
        await watching.CancelAsync();
        // The guest moved paused: each agent reported it PAUSED, and neither ever RUNNING.
        var states = (Source: await onSource, Destination: await onDestination);
        Assert.Contains(AgentV1.VmState.Paused, states.Source);
        Assert.Contains(AgentV1.VmState.Paused, states.Destination);
        Assert.DoesNotContain(AgentV1.VmState.Running, states.Source.Concat(states.Destination));
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal(other, vm.Str("node"));
        Assert.Equal("STOPPED", vm.Str("state"));
        var guest = await ResizeMoves.GuestAsync(await _agents.ForAsync(other), vmId);
        Assert.NotNull(guest);
        Assert.Equal(AgentV1.VmState.Stopped, guest.State);
        Assert.Equal(1024, guest.Shape.MemoryMb);
        Assert.Null(await ResizeMoves.GuestAsync(await _agents.ForAsync(source), vmId));
        Assert.Equal($"{other}:DISK_GB=2,{other}:MEMORY_MB=1024,{other}:VCPU=1", await ResizeMoves.AllocationsAsync(cloud, vmId));
        Assert.Equal("1|1|1024|2", await ResizeMoves.UsageAsync(cloud, tenant.Id));

        // Started again on its new node, it runs with the new shape.
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/start")).Str("state"));
        Assert.Equal(AgentV1.VmState.Running, (await ResizeMoves.GuestAsync(await _agents.ForAsync(other), vmId))!.State);
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        Assert.Equal("SUCCEEDED", (await cloud.Http.RunAsync(HttpMethod.Delete, $"/v1/vms/{fillerId}")).Str("state"));
    }

    /// <summary>Every state a node's agent reports for the VM from now until <paramref name="stop"/>; the watch is open when this returns.</summary>
    private async Task<Task<List<AgentV1.VmState>>> StatesAsync(string node, string vmId, CancellationToken stop)
    {
        var vmRef = Guid.Parse(vmId).ToString("N");
        var call = (await _agents.ForAsync(node)).WatchEvents(new AgentV1.WatchEventsRequest(), new CallOptions(cancellationToken: stop));
        await call.ResponseHeadersAsync;
        return Collect();

        async Task<List<AgentV1.VmState>> Collect()
        {
            using (call)
            {
                var states = new List<AgentV1.VmState>();
                try
                {
                    while (await call.ResponseStream.MoveNext(stop))
                    {
                        if (call.ResponseStream.Current.VmId == vmRef)
                        {
                            states.Add(call.ResponseStream.Current.State);
                        }
                    }
                }
                catch (Exception e) when (stop.IsCancellationRequested && e is OperationCanceledException or RpcException)
                {
                }
                return states;
            }
        }
    }

    [Fact]
    public async Task When_no_other_node_is_large_enough_the_resize_is_rolled_back_with_a_clear_error_and_nothing_changes()
    {
        using var tenant = await cloud.CreateTenantAsync("rznone");
        await ResizeMoves.EnsureFlavorsAsync(cloud);
        var vmId = await tenant.Member.CreateRunningVmAsync("stuck", ResizeMoves.Small);
        var source = (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");
        var allocations = await ResizeMoves.AllocationsAsync(cloud, vmId);
        var usage = await ResizeMoves.UsageAsync(cloud, tenant.Id);

        var failed = await tenant.Member.RunLongAsync($"/v1/vms/{vmId}/resize", $$"""{"flavor":"{{ResizeMoves.Huge}}"}""");

        Assert.Equal("FAILED", failed.Str("state"));
        Assert.Equal("RESOURCE_EXHAUSTED", failed.Str("errorCode"));
        Assert.Equal("ROLLED_BACK", failed.Str("recovery"));
        // The tenant's message names no node; the operator's does.
        Assert.DoesNotContain("test-node-", failed.Str("errorMessage"), StringComparison.Ordinal);
        var message = (await cloud.Http.GetJsonAsync($"/v1/operations/{failed.Str("id")}")).Body.Str("errorMessage");
        Assert.Contains($"Flavor '{ResizeMoves.Huge}' does not fit on node {source}", message, StringComparison.Ordinal);
        Assert.Contains("No other node can take it", message, StringComparison.Ordinal);
        Assert.Contains("resource-fit", message, StringComparison.Ordinal);
        Assert.Contains($"the VM stays on node {source} with flavor '{ResizeMoves.Small}'", message, StringComparison.Ordinal);
        await ResizeMoves.AssertUnchangedAsync(cloud, tenant, vmId, source, allocations, usage);
        Assert.Equal(AgentV1.VmState.Running, (await ResizeMoves.GuestAsync(await _agents.ForAsync(source), vmId))!.State);
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    [Fact]
    public async Task The_move_keeps_the_vms_server_group_policy_and_its_membership()
    {
        using var tenant = await cloud.CreateTenantAsync("rzgroup");
        await ResizeMoves.EnsureFlavorsAsync(cloud);
        var (created, group) = await tenant.Member.PostAsync("/v1/server-groups", """{"name":"apart","policy":"anti-affinity","maxMembers":2}""");
        Assert.Equal(HttpStatusCode.Created, created);
        var labels = $$"""{"placement.cloud/server-group":"{{group.Str("id")}}"}""";
        var vmId = await tenant.Member.CreateRunningVmAsync("member-a", ResizeMoves.Small, labels);
        var peerId = await tenant.Member.CreateRunningVmAsync("member-b", ResizeMoves.Small, labels);
        var source = (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");
        var other = (await cloud.Http.GetJsonAsync($"/v1/vms/{peerId}")).Body.Str("node");
        Assert.NotEqual(source, other);
        var fillerId = await ResizeMoves.FillAsync(cloud, source, "group-filler");
        var allocations = await ResizeMoves.AllocationsAsync(cloud, vmId);

        // The only other node holds the group's other member: anti-affinity forbids it.
        var refused = await tenant.Member.RunLongAsync($"/v1/vms/{vmId}/resize", $$"""{"flavor":"{{ResizeMoves.Large}}"}""");

        Assert.Equal("FAILED", refused.Str("state"));
        Assert.Equal("ROLLED_BACK", refused.Str("recovery"));
        Assert.Contains("server-group", refused.Str("errorMessage"), StringComparison.Ordinal);
        // The group is full (2 of 2), but the VM moving is one of the two: that is not held against it.
        Assert.DoesNotContain("is full", refused.Str("errorMessage"), StringComparison.Ordinal);
        Assert.Equal(allocations, await ResizeMoves.AllocationsAsync(cloud, vmId));

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{peerId}")).Str("state"));
        var moved = await tenant.Member.RunLongAsync($"/v1/vms/{vmId}/resize", $$"""{"flavor":"{{ResizeMoves.Large}}"}""");

        Assert.True(moved.Str("state") == "SUCCEEDED", moved.ToString());
        Assert.Equal(other, (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node"));
        var (_, members) = await tenant.Member.GetJsonAsync($"/v1/server-groups/{group.Str("id")}");
        Assert.Contains(vmId, members.GetProperty("memberIds").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        Assert.Equal("SUCCEEDED", (await cloud.Http.RunAsync(HttpMethod.Delete, $"/v1/vms/{fillerId}")).Str("state"));
    }

    [Fact]
    public async Task A_move_left_mid_way_by_a_stopped_controller_is_rolled_back_by_the_one_that_takes_it_over()
    {
        using var tenant = await cloud.CreateTenantAsync("rzcrash");
        var (vmId, source, other, fillerId) = await ResizeMoves.VmOnAFullNodeAsync(cloud, tenant, "orphan");
        var allocations = await ResizeMoves.AllocationsAsync(cloud, vmId);
        var usage = await ResizeMoves.UsageAsync(cloud, tenant.Id);
        var operationId = await ResizeMoves.LeaveMoveBehindAsync(cloud, tenant, vmId, other);

        var settled = await ResizeMoves.WaitAsync(tenant.Member, operationId.ToString());

        Assert.Equal("FAILED", settled.Str("state"));
        Assert.Equal("ROLLED_BACK", settled.Str("recovery"));
        Assert.Contains("stopped mid-way", settled.Str("errorMessage"), StringComparison.Ordinal);
        await ResizeMoves.AssertUnchangedAsync(cloud, tenant, vmId, source, allocations, usage);
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = @op", ("op", operationId)));
        Assert.Equal(AgentV1.VmState.Running, (await ResizeMoves.GuestAsync(await _agents.ForAsync(source), vmId))!.State);
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        Assert.Equal("SUCCEEDED", (await cloud.Http.RunAsync(HttpMethod.Delete, $"/v1/vms/{fillerId}")).Str("state"));
    }

    [Fact]
    public async Task A_move_whose_vm_had_arrived_when_its_controller_stopped_is_finished_by_the_one_that_takes_it_over()
    {
        using var tenant = await cloud.CreateTenantAsync("rzlate");
        var (vmId, source, other, fillerId) = await ResizeMoves.VmOnAFullNodeAsync(cloud, tenant, "arrived");
        var (_, row) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}");
        var sourceAgent = await _agents.ForAsync(source);
        var destinationAgent = await _agents.ForAsync(other);
        // The stopped controller had moved the guest already: the agents did their part under the
        // operation's migration id, the controller never recorded the landing.
        var operationId = Guid.CreateVersion7();
        var spec = new AgentV1.VmSpec
        {
            VmId = Guid.Parse(vmId).ToString("N"),
            Name = row.Str("name"),
            // The guest's shape with its hotplug bounds, as the source reports it and the controller passes it on.
            Shape = (await ResizeMoves.GuestAsync(sourceAgent, vmId))!.Shape,
            Image = row.TryGetProperty("image", out var image) ? image.GetString() ?? "" : "",
        };
        // QEMU migrates over TLS here (QemuCloudFixture): each side names the other node, as the controller does.
        var prepared = await destinationAgent.PrepareMigrationAsync(new AgentV1.PrepareMigrationRequest { Spec = spec, MigrationId = operationId.ToString("N"), PeerNode = source });
        using (var call = sourceAgent.Migrate(new AgentV1.MigrateRequest
        {
            VmId = spec.VmId,
            MigrationId = operationId.ToString("N"),
            MigrationUri = prepared.MigrationUri,
            DiskUri = prepared.DiskUri,
            PeerNode = other,
        }))
        {
            AgentV1.MigrationProgress? last = null;
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                last = call.ResponseStream.Current;
            }
            Assert.Equal(AgentV1.MigrationProgress.Types.Phase.Completed, last?.Phase);
        }
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await ResizeMoves.GuestAsync(destinationAgent, vmId))?.State != AgentV1.VmState.Running)
        {
            Assert.True(DateTime.UtcNow < deadline, "The guest did not start on the destination.");
            await Task.Delay(100);
        }
        var sweptOperationId = await ResizeMoves.LeaveMoveBehindAsync(cloud, tenant, vmId, other, operationId);

        var finished = await ResizeMoves.WaitAsync(tenant.Member, sweptOperationId.ToString());

        Assert.True(finished.Str("state") == "SUCCEEDED", finished.ToString());
        Assert.Equal("RESUMED", finished.Str("recovery"));
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal((other, ResizeMoves.Large, "RUNNING"), (vm.Str("node"), vm.Str("flavor"), vm.Str("state")));
        Assert.Equal(1024, (await ResizeMoves.GuestAsync(destinationAgent, vmId))!.Shape.MemoryMb);
        Assert.Null(await ResizeMoves.GuestAsync(sourceAgent, vmId));
        Assert.Equal($"{other}:DISK_GB=2,{other}:MEMORY_MB=1024,{other}:VCPU=1", await ResizeMoves.AllocationsAsync(cloud, vmId));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM consumers WHERE kind = 'migration'"));
        Assert.Equal("1|1|1024|2", await ResizeMoves.UsageAsync(cloud, tenant.Id));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        Assert.Equal("SUCCEEDED", (await cloud.Http.RunAsync(HttpMethod.Delete, $"/v1/vms/{fillerId}")).Str("state"));
    }

    public void Dispose() => _agents.Dispose();
}

/// <summary>The destination's agent dies before the VM reaches it: the move is rolled back and nothing changes.</summary>
[Collection(BrokenResizeCloudCollection.Name)]
public sealed class ResizeMoveRollbackTests(ResizeCloudFixture cloud) : IDisposable
{
    private readonly AgentClients _agents = new(cloud);

    [Fact]
    public async Task When_the_destination_agent_is_gone_the_move_is_rolled_back_and_the_vm_keeps_running_on_its_node()
    {
        using var tenant = await cloud.CreateTenantAsync("rzdead");
        var (vmId, source, other, _) = await ResizeMoves.VmOnAFullNodeAsync(cloud, tenant, "survivor");
        var allocations = await ResizeMoves.AllocationsAsync(cloud, vmId);
        var usage = await ResizeMoves.UsageAsync(cloud, tenant.Id);
        var sourceAgent = await _agents.ForAsync(source);
        var pid = (await ResizeMoves.GuestAsync(sourceAgent, vmId))!.Pid;
        await cloud.StopAgentAsync(other == "qemu-node-1" ? 1 : 2);

        var failed = await tenant.Member.RunLongAsync($"/v1/vms/{vmId}/resize", $$"""{"flavor":"{{ResizeMoves.Large}}"}""");

        Assert.Equal("FAILED", failed.Str("state"));
        Assert.Equal("ROLLED_BACK", failed.Str("recovery"));
        Assert.DoesNotContain("test-node-", failed.Str("errorMessage"), StringComparison.Ordinal);
        var message = (await cloud.Http.GetJsonAsync($"/v1/operations/{failed.Str("id")}")).Body.Str("errorMessage");
        Assert.Contains($"Moving the VM to node {other} for flavor '{ResizeMoves.Large}' failed", message, StringComparison.Ordinal);
        Assert.Contains($"Rolled back: the VM stays on node {source} with flavor '{ResizeMoves.Small}'", message, StringComparison.Ordinal);
        await ResizeMoves.AssertUnchangedAsync(cloud, tenant, vmId, source, allocations, usage);
        var guest = (await ResizeMoves.GuestAsync(sourceAgent, vmId))!;
        Assert.Equal(AgentV1.VmState.Running, guest.State);
        Assert.Equal(pid, guest.Pid);
        Assert.Equal(256, guest.Shape.MemoryMb);
    }

    public void Dispose() => _agents.Dispose();
}
