using Cloud.Contracts.Agent.V1;
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
