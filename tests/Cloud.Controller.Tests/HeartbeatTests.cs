using Cloud.Contracts.Agent.V1;
using Cloud.Contracts.Node.V1;
using Cloud.Controller.Tests.Support;
using Cloud.Grpc;

namespace Cloud.Controller.Tests;

/// <summary>Heartbeats bring the ledger's view of VMs in line with what the nodes report.</summary>
[Collection(CloudCollection.Name)]
public sealed class HeartbeatTests(CloudFixture cloud)
{
    [Fact]
    public async Task A_guest_stopped_behind_the_controllers_back_shows_as_stopped()
    {
        var (_, created) = await cloud.Http.PostAsync("/v1/vms", """{"name":"stopped-behind","flavor":"m1.tiny"}""");
        Assert.Equal("SUCCEEDED", (await cloud.Http.WaitForOperationAsync(created.Str("id"))).Str("state"));
        var vmId = Guid.Parse(created.Str("targetId"));
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        var (_, nodes) = await cloud.Http.GetJsonAsync("/v1/nodes");
        var address = nodes.GetProperty("nodes").EnumerateArray().Single(n => n.Str("name") == vm.Str("node")).Str("address");

        using (var channel = GrpcChannel.ForAddress(address))
        {
            await new NodeAgentGrpc.NodeAgentClient(channel).StopVmAsync(
                new StopVmRequest { VmId = vmId.ToString("N"), Force = true }, new CallOptions(Deadline: DateTime.UtcNow.AddSeconds(10)));
        }

        Assert.Equal("STOPPED", await WaitForStateAsync(vmId, "STOPPED"));
    }

    [Fact]
    public async Task A_vm_its_node_no_longer_has_becomes_an_error()
    {
        var vmId = Guid.CreateVersion7();
        await cloud.ScalarAsync(
            """
            INSERT INTO vms (id, project_id, name, flavor_name, state, node_id, vcpus, memory_mb, disk_gb, labels, created_at, updated_at)
            SELECT @id, 'admin', 'ghost', 'm1.tiny', 'RUNNING', id, 1, 512, 1, '{}', now() - interval '1 hour', now() - interval '1 hour'
              FROM nodes WHERE name = 'test-node-1'
            RETURNING 1
            """,
            ("id", vmId));

        Assert.Equal("ERROR", await WaitForStateAsync(vmId, "ERROR"));
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal("The node no longer reports this VM.", vm.Str("error"));
    }

    [Fact]
    public async Task A_late_report_leaves_a_vm_recorded_after_the_previous_heartbeat_alone_and_the_next_report_settles_it()
    {
        using var channel = GrpcChannel.ForAddress(cloud.GrpcUrl);
        var registry = new NodeRegistryGrpc.NodeRegistryClient(channel);
        var options = new CallOptions(new Metadata().Add("authorization", "Bearer " + CloudFixture.OperatorToken), DateTime.UtcNow.AddSeconds(30));
        // A node without inventory: nothing else is ever placed on it.
        var registered = await registry.RegisterAsync(
            new RegisterRequest { Node = new NodeInfo { NodeName = "late-reporter", Hypervisor = "fake" }, AgentAddress = "http://127.0.0.9:7070" }, options);
        var nodeId = Guid.Parse(registered.NodeId);
        var vmId = Guid.CreateVersion7();
        try
        {
            // The node's previous heartbeat arrived an hour ago and the VM was recorded on it half an
            // hour ago: however late it arrives, a report sampled after that heartbeat may predate the VM.
            await cloud.ScalarAsync("UPDATE nodes SET last_heartbeat_at = now() - interval '1 hour' WHERE id = @node RETURNING 1", ("node", nodeId));
            await cloud.ScalarAsync(
                """
                INSERT INTO vms (id, project_id, name, flavor_name, state, node_id, vcpus, memory_mb, disk_gb, labels, created_at, updated_at)
                VALUES (@id, 'admin', 'late', 'm1.tiny', 'RUNNING', @node, 1, 512, 1, '{}', now() - interval '30 minutes', now() - interval '30 minutes')
                RETURNING 1
                """,
                ("id", vmId), ("node", nodeId));
            var report = new HeartbeatRequest { NodeId = registered.NodeId };

            Assert.True((await registry.HeartbeatAsync(report, options)).Known);
            Assert.Equal("RUNNING", await StateAsync(vmId));

            // This report was sampled after the previous one arrived, so it is complete: the VM is gone.
            Assert.True((await registry.HeartbeatAsync(report, options)).Known);
            Assert.Equal("ERROR", await StateAsync(vmId));
        }
        finally
        {
            await cloud.QueryAsync("DELETE FROM vms WHERE id = @id", ("id", vmId));
            await cloud.QueryAsync("DELETE FROM nodes WHERE id = @node", ("node", nodeId));
        }
    }

    private async Task<string> StateAsync(Guid vmId)
        => (string)(await cloud.QueryAsync("SELECT state FROM vms WHERE id = @id", ("id", vmId)))!;

    private async Task<string> WaitForStateAsync(Guid vmId, string state)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        string current;
        do
        {
            await Task.Delay(100);
            var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
            current = vm.Str("state");
        }
        while (current != state && DateTime.UtcNow < deadline);
        return current;
    }
}
