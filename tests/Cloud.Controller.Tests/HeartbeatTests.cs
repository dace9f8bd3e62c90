using Cloud.Contracts.Agent.V1;
using Cloud.Contracts.Node.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

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

        using (var channel = cloud.NewAgentChannel(new Uri(address)))
        {
            await new NodeAgent.NodeAgentClient(channel).StopVmAsync(
                new StopVmRequest { VmId = vmId.ToString("N"), Force = true }, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10)));
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
        using var channel = cloud.NewNodeChannel("late-reporter");
        var registry = new NodeRegistry.NodeRegistryClient(channel);
        var registered = await registry.RegisterAsync(BareNode("late-reporter", "http://127.0.0.9:7070"), Options);
        var nodeId = Guid.Parse(registered.NodeId);
        var vmId = Guid.CreateVersion7();
        try
        {
            await RecordVmBeforeAnyRecentHeartbeatAsync(nodeId, vmId);
            var report = new HeartbeatRequest { NodeId = registered.NodeId };

            Assert.True((await registry.HeartbeatAsync(report, Options)).Known);
            Assert.Equal("RUNNING", await StateAsync(vmId));

            // This report was sampled after the previous one arrived, so it is complete: the VM is gone.
            Assert.True((await registry.HeartbeatAsync(report, Options)).Known);
            Assert.Equal("ERROR", await StateAsync(vmId));
        }
        finally
        {
            await ForgetAsync(nodeId, vmId);
        }
    }

    [Fact]
    public async Task The_agents_number_their_heartbeats_in_the_session_they_registered_with()
    {
        const string Numbered = "SELECT heartbeat_sequence FROM nodes WHERE name = 'test-node-1' AND heartbeat_session IS NOT NULL";
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var first = await cloud.QueryAsync(Numbered);
        while (first is not long && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
            first = await cloud.QueryAsync(Numbered);
        }
        Assert.IsType<long>(first);
        object? later;
        do
        {
            await Task.Delay(200);
            later = await cloud.QueryAsync(Numbered);
        }
        while (later is long l && l == (long)first! && DateTime.UtcNow < deadline);

        Assert.True(later is long next && next > (long)first!, $"the node's heartbeat number went from {first} to {later}");
    }

    [Fact]
    public async Task A_heartbeat_older_than_one_recorded_or_from_before_the_node_registered_again_settles_nothing()
    {
        using var channel = cloud.NewNodeChannel("numbered-reporter");
        var registry = new NodeRegistry.NodeRegistryClient(channel);
        var register = BareNode("numbered-reporter", "http://127.0.0.9:7071");
        var first = await registry.RegisterAsync(register, Options);
        var nodeId = Guid.Parse(first.NodeId);
        var vmId = Guid.CreateVersion7();
        try
        {
            await RecordVmBeforeAnyRecentHeartbeatAsync(nodeId, vmId);
            HeartbeatRequest Report(string session, ulong sequence, bool withVm)
            {
                var report = new HeartbeatRequest { NodeId = first.NodeId, HeartbeatSession = session, Sequence = sequence };
                if (withVm)
                {
                    report.Vms.Add(new Vm { VmId = vmId.ToString("N"), State = VmState.Running });
                }
                return report;
            }

            // Heartbeat 2 arrives first and has the VM.
            Assert.True((await registry.HeartbeatAsync(Report(first.HeartbeatSession, 2, withVm: true), Options)).Known);
            var recorded = await cloud.QueryAsync("SELECT last_heartbeat_at FROM nodes WHERE id = @node", ("node", nodeId));

            // Heartbeat 1, sampled before the VM existed on the node, arrives late: it settles nothing
            // and is not the node's last heartbeat either.
            Assert.True((await registry.HeartbeatAsync(Report(first.HeartbeatSession, 1, withVm: false), Options)).Known);
            Assert.Equal("RUNNING", await StateAsync(vmId));
            Assert.Equal(recorded, await cloud.QueryAsync("SELECT last_heartbeat_at FROM nodes WHERE id = @node", ("node", nodeId)));

            // The agent registers again (its heartbeat timed out): a heartbeat of the old session is old, whatever its number.
            var second = await registry.RegisterAsync(register, Options);
            Assert.Equal(first.NodeId, second.NodeId);
            Assert.NotEqual(first.HeartbeatSession, second.HeartbeatSession);
            Assert.True((await registry.HeartbeatAsync(Report(first.HeartbeatSession, 3, withVm: false), Options)).Known);
            Assert.Equal("RUNNING", await StateAsync(vmId));

            // The new session's first heartbeat is taken, and settles the VM the node no longer has.
            Assert.True((await registry.HeartbeatAsync(Report(second.HeartbeatSession, 1, withVm: false), Options)).Known);
            Assert.Equal("ERROR", await StateAsync(vmId));
        }
        finally
        {
            await ForgetAsync(nodeId, vmId);
        }
    }

    [Theory]
    [InlineData("not-a-session", 1UL, "heartbeat_session must be the session Register returned.")]
    [InlineData("0b7d4c52-1f0e-4a57-9d7c-1d2f3a4b5c6d", 0UL, "sequence must be between 1 and 9223372036854775807, not 0.")]
    [InlineData("0b7d4c52-1f0e-4a57-9d7c-1d2f3a4b5c6d", ulong.MaxValue, "sequence must be between 1 and 9223372036854775807, not 18446744073709551615.")]
    public async Task A_badly_numbered_heartbeat_is_refused(string session, ulong sequence, string expected)
    {
        using var channel = cloud.NewNodeChannel("badly-numbered");
        var registry = new NodeRegistry.NodeRegistryClient(channel);

        var error = await Assert.ThrowsAsync<RpcException>(() => registry.HeartbeatAsync(
            new HeartbeatRequest { NodeId = Guid.NewGuid().ToString(), HeartbeatSession = session, Sequence = sequence }, Options).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal(expected, error.Status.Detail);
    }

    private static CallOptions Options => new(deadline: DateTime.UtcNow.AddSeconds(30));

    /// <summary>A node without inventory: nothing else is ever placed on it.</summary>
    private static RegisterRequest BareNode(string name, string address)
        => new() { Node = new NodeInfo { NodeName = name, Hypervisor = "fake" }, AgentAddress = address };

    /// <summary>
    /// The node's previous heartbeat arrived an hour ago and the VM was recorded on it half an
    /// hour ago: however late it arrives, a report sampled after that heartbeat may predate the VM.
    /// </summary>
    private async Task RecordVmBeforeAnyRecentHeartbeatAsync(Guid nodeId, Guid vmId)
    {
        await cloud.ScalarAsync("UPDATE nodes SET last_heartbeat_at = now() - interval '1 hour' WHERE id = @node RETURNING 1", ("node", nodeId));
        await cloud.ScalarAsync(
            """
            INSERT INTO vms (id, project_id, name, flavor_name, state, node_id, vcpus, memory_mb, disk_gb, labels, created_at, updated_at)
            VALUES (@id, 'admin', 'reported', 'm1.tiny', 'RUNNING', @node, 1, 512, 1, '{}', now() - interval '30 minutes', now() - interval '30 minutes')
            RETURNING 1
            """,
            ("id", vmId), ("node", nodeId));
    }

    private async Task ForgetAsync(Guid nodeId, Guid vmId)
    {
        await cloud.QueryAsync("DELETE FROM vms WHERE id = @id", ("id", vmId));
        await cloud.QueryAsync("DELETE FROM nodes WHERE id = @node", ("node", nodeId));
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
