using System.Net;
using System.Text.Json;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Privacy;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Tests;

/// <summary>
/// Tenants see a per-tenant host id where operators see node names: on both wires, in watches,
/// operations, placement decisions and refusals; zones without the cloud's capacity.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class HostIdTests(CloudFixture cloud) : IDisposable
{
    private static readonly string[] NodeNames = ["test-node-1", "test-node-2"];

    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();
    private readonly AgentClients _agents = new(cloud);

    [Fact]
    public async Task HostId_tells_a_tenant_which_of_its_vms_share_a_host_and_no_node_name()
    {
        using var alpha = await cloud.CreateTenantAsync("hosta");
        using var beta = await cloud.CreateTenantAsync("hostb");
        var a1 = await CreateOnAsync(alpha, "a1", "test-node-1");
        var a2 = await CreateOnAsync(alpha, "a2", "test-node-1");
        var a3 = await CreateOnAsync(alpha, "a3", "test-node-2");
        var b1 = await CreateOnAsync(beta, "b1", "test-node-1");
        var secrets = await NodeSecretsAsync();

        var seen = new Dictionary<string, string>();
        foreach (var (tenant, vmId) in new[] { (alpha, a1), (alpha, a2), (alpha, a3), (beta, b1) })
        {
            foreach (var client in new[] { tenant.Member, tenant.Reader })
            {
                var raw = await RawAsync(client, $"/v1/vms/{vmId}");
                AssertNamesNoNode(raw, secrets);
                var vm = JsonDocument.Parse(raw).RootElement;
                Assert.Equal("", vm.Str("node"));
                Assert.Matches("^[0-9a-f]{32}$", vm.Str("hostId"));
                seen[vmId] = vm.Str("hostId");
            }
        }
        Assert.Equal(seen[a1], seen[a2]);
        Assert.NotEqual(seen[a1], seen[a3]);
        Assert.NotEqual(seen[a1], seen[b1]);

        var list = await RawAsync(alpha.Reader, "/v1/vms");
        AssertNamesNoNode(list, secrets);
        Assert.Equal(3, JsonDocument.Parse(list).RootElement.GetProperty("vms").EnumerateArray().Count(v => v.Str("hostId").Length == 32));
        Assert.Equal("SUCCEEDED", (await alpha.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{a1}/snapshots", """{"name":"where"}""")).Str("state"));
        var snapshots = await RawAsync(alpha.Reader, $"/v1/vms/{a1}/snapshots");
        AssertNamesNoNode(snapshots, secrets);
        var snapshot = JsonDocument.Parse(snapshots).RootElement.GetProperty("snapshots").EnumerateArray().Single();
        Assert.Equal((seen[a1], ""), (snapshot.Str("hostId"), snapshot.Str("node")));
        Assert.Equal("test-node-1", (await cloud.Http.GetJsonAsync($"/v1/snapshots/{snapshot.Str("id")}")).Body.Str("node"));
        var operations = await RawAsync(alpha.Member, "/v1/operations");
        Assert.Contains(a1, operations, StringComparison.Ordinal);
        AssertNamesNoNode(operations, secrets);

        // The operator sees the node, and the same host id the tenant sees.
        var (_, asOperator) = await cloud.Http.GetJsonAsync($"/v1/vms/{a1}");
        Assert.Equal(("test-node-1", seen[a1], alpha.Id), (asOperator.Str("node"), asOperator.Str("hostId"), asOperator.Str("project")));
        Assert.Equal("test-node-2", (await cloud.Http.GetJsonAsync($"/v1/vms/{a3}")).Body.Str("node"));
    }

    [Fact]
    public async Task Grpc_answers_and_both_watches_give_a_tenant_host_ids_only()
    {
        using var tenant = await cloud.CreateTenantAsync("hostgrpc");
        var vmId = await CreateOnAsync(tenant, "g1", "test-node-2");
        var secrets = await NodeSecretsAsync();
        var hostId = (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("hostId");
        var compute = new Compute.ComputeClient(_channel);
        var options = Tenancy.Bearer(tenant.ReaderToken);

        var vm = await compute.GetVmAsync(new GetVmRequest { Id = vmId }, options);
        AssertNamesNoNode(vm.ToString(), secrets);
        Assert.Equal((hostId, ""), (vm.HostId, vm.Node));
        var listed = await compute.ListVmsAsync(new ListVmsRequest(), options);
        AssertNamesNoNode(listed.ToString(), secrets);
        Assert.Equal(hostId, Assert.Single(listed.Vms).HostId);
        var operations = await compute.ListOperationsAsync(new ListOperationsRequest(), options);
        Assert.NotEmpty(operations.Operations);
        AssertNamesNoNode(operations.ToString(), secrets);

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var call = compute.WatchVms(new WatchVmsRequest(), new CallOptions(options.Headers, cancellationToken: deadline.Token));
        Assert.True(await call.ResponseStream.MoveNext(deadline.Token));
        AssertNamesNoNode(call.ResponseStream.Current.ToString(), secrets);
        Assert.Equal((vmId, hostId), (call.ResponseStream.Current.Id, call.ResponseStream.Current.HostId));

        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/vms/watch");
        using var response = await tenant.Reader.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(deadline.Token));
        string? data = null;
        while (data is null && await reader.ReadLineAsync(deadline.Token) is { } line)
        {
            data = line.StartsWith("data: ", StringComparison.Ordinal) ? line["data: ".Length..] : null;
        }
        Assert.NotNull(data);
        AssertNamesNoNode(data, secrets);
        Assert.Equal(hostId, JsonDocument.Parse(data).RootElement.Str("hostId"));

        // The operator's gRPC view names the node.
        Assert.Equal("test-node-2", (await compute.GetVmAsync(new GetVmRequest { Id = vmId }, Tenancy.Bearer(CloudFixture.OperatorToken))).Node);
    }

    [Fact]
    public async Task Errors_reasons_and_decisions_a_tenant_reads_name_its_host_id_instead_of_the_node()
    {
        using var tenant = await cloud.CreateTenantAsync("hosttext");
        var vmId = await CreateOnAsync(tenant, "t1", "test-node-1");
        var secrets = await NodeSecretsAsync();
        var hostId = (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("hostId");
        var address = new Uri(secrets[2]).Authority;
        // Texts stored before anyone knew who would read them, as agents' errors are.
        Assert.Equal(1, await cloud.ScalarAsync(
            "WITH u AS (UPDATE vms SET error = @e WHERE id = @id RETURNING 1) SELECT count(*) FROM u",
            ("e", $"Node test-node-1 ({address}) could not reach test-node-2."), ("id", Guid.Parse(vmId))));

        var vm = (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body;
        AssertNamesNoNode(vm.ToString(), secrets);
        Assert.StartsWith($"Node {hostId} (", vm.Str("error"), StringComparison.Ordinal);
        Assert.Equal($"Node test-node-1 ({address}) could not reach test-node-2.", (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("error"));

        // The scheduler's decision ("Placed on test-node-1: ...") as the tenant reads it.
        var decisions = await RawAsync(tenant.Reader, $"/v1/placement/decisions?consumer_id={vmId}");
        AssertNamesNoNode(decisions, secrets);
        var decision = JsonDocument.Parse(decisions).RootElement.GetProperty("decisions").EnumerateArray().First();
        Assert.Equal((hostId, ""), (decision.Str("hostId"), decision.Str("node")));
        Assert.Contains(hostId, decision.Str("summary"), StringComparison.Ordinal);
        var operatorDecision = (await cloud.Http.GetJsonAsync($"/v1/placement/decisions/{decision.Str("id")}")).Body;
        Assert.Equal(("test-node-1", hostId), (operatorDecision.Str("node"), operatorDecision.Str("hostId")));

        // A refusal that names the node (the guest is gone from it behind the controller's back).
        var agent = await _agents.ForAsync("test-node-1");
        await agent.DeleteVmAsync(new AgentV1.VmRef { VmId = Guid.Parse(vmId).ToString("N") });
        var (status, problem) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/console-output");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertNamesNoNode(problem.ToString(), secrets);
        var grpc = await Assert.ThrowsAsync<RpcException>(() => new Compute.ComputeClient(_channel)
            .GetConsoleOutputAsync(new GetConsoleOutputRequest { Id = vmId }, Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, grpc.StatusCode);
        AssertNamesNoNode(grpc.Status.Detail, secrets);
        var (_, operatorProblem) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}/console-output");
        Assert.Contains("test-node-1", operatorProblem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    [Fact]
    public async Task Availability_zones_show_tenants_names_and_availability_without_capacity()
    {
        using var tenant = await cloud.CreateTenantAsync("hostzones");
        var raw = await RawAsync(tenant.Reader, "/v1/availability-zones");
        var zones = JsonDocument.Parse(raw).RootElement.GetProperty("zones").EnumerateArray().ToList();
        Assert.NotEmpty(zones);
        Assert.Contains(zones, z => z.GetProperty("available").GetBoolean());
        foreach (var hidden in new[] { "\"nodes\"", "nodesUp", "vcpusFree", "memoryMbFree" })
        {
            Assert.DoesNotContain(hidden, raw, StringComparison.Ordinal);
        }
        var placement = new Cloud.Contracts.Compute.V1.Placement.PlacementClient(_channel);
        var asTenant = await placement.ListAvailabilityZonesAsync(new ListAvailabilityZonesRequest(), Tenancy.Bearer(tenant.MemberToken));
        Assert.All(asTenant.Zones, z => Assert.False(z.HasNodes || z.HasNodesUp || z.HasVcpusFree || z.HasMemoryMbFree, z.ToString()));

        var asOperator = await placement.ListAvailabilityZonesAsync(new ListAvailabilityZonesRequest(), Tenancy.Bearer(CloudFixture.OperatorToken));
        Assert.Equal(asTenant.Zones.Select(z => (z.Name, z.Available)), asOperator.Zones.Select(z => (z.Name, z.Available)));
        Assert.True(asOperator.Zones.Sum(z => z.Nodes) >= 2);
        Assert.All(asOperator.Zones, z => Assert.True(z.HasVcpusFree && z.HasMemoryMbFree, z.ToString()));
    }

    /// <summary>The nodes' names and agent addresses, none of which a tenant may read.</summary>
    private async Task<string[]> NodeSecretsAsync()
    {
        var (_, nodes) = await cloud.Http.GetJsonAsync("/v1/nodes");
        var byName = nodes.GetProperty("nodes").EnumerateArray().ToDictionary(n => n.Str("name"), n => n.Str("address"));
        return [.. NodeNames, byName["test-node-1"], byName["test-node-2"]];
    }

    private static void AssertNamesNoNode(string text, string[] secrets)
    {
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
            if (Uri.TryCreate(secret, UriKind.Absolute, out var uri))
            {
                Assert.DoesNotContain(uri.Authority, text, StringComparison.Ordinal);
            }
        }
    }

    private static async Task<string> RawAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        return text;
    }

    /// <summary>A running VM of the tenant on <paramref name="node"/>: the other node is cordoned meanwhile.</summary>
    private async Task<string> CreateOnAsync(TestTenant tenant, string name, string node)
    {
        var other = node == "test-node-1" ? "test-node-2" : "test-node-1";
        Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{other}/cordon", "{}")).Status);
        try
        {
            return await tenant.Member.CreateRunningVmAsync(name);
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync($"/v1/nodes/{other}/uncordon", "{}")).Status);
        }
    }

    public void Dispose()
    {
        _channel.Dispose();
        _agents.Dispose();
    }
}

/// <summary>How node names and addresses are found in a text: whole words, whatever surrounds them.</summary>
public sealed class NodeTextScrubberTests
{
    private static readonly NodeTextScrubber Scrubber = new([("node-1", "http://10.0.0.1:7070"), ("node-10", "http://host-a.example:7070"), ("edge", "http://[fd00::1]:7070"), ("cafe", "http://10.0.0.3:7070")]);

    [Theory]
    [InlineData("Node node-1 could not create the VM.", "Node <node-1> could not create the VM.")]
    [InlineData("node-10 is not node-1, nor node-100", "<node-10> is not <node-1>, nor node-100")]
    [InlineData("dial 10.0.0.1:7070 failed; 10.0.0.12 is another", "dial <node-1>:7070 failed; 10.0.0.12 is another")]
    [InlineData("http://host-a.example:7070/ refused", "http://<node-10>:7070/ refused")]
    [InlineData("node-1.example and vm_node-1 and my-node-1", "<node-1>.example and vm_<node-1> and my-node-1")]
    [InlineData("at [fd00::1]:7070 or fd00::1", "at <edge>:7070 or <edge>")]
    [InlineData("the edge of node-1's disk", "the <edge> of <node-1>'s disk")]
    [InlineData("at 12:30:45 cafe:7070 left", "at 12:30:45 <cafe>:7070 left")]
    public void Scrub_replaces_each_node_name_and_agent_host_as_a_whole_word(string text, string expected)
        => Assert.Equal(expected, Scrubber.Scrub(text, node => $"<{node}>"));

    [Fact]
    public void HostId_is_per_tenant_and_per_node()
    {
        var key = new byte[32];
        Assert.Equal(HostIds.Compute(key, "a", "n1"), HostIds.Compute(key, "a", "n1"));
        Assert.NotEqual(HostIds.Compute(key, "a", "n1"), HostIds.Compute(key, "b", "n1"));
        Assert.NotEqual(HostIds.Compute(key, "a", "n1"), HostIds.Compute(key, "a", "n2"));
        Assert.NotEqual(HostIds.Compute(key, "a", "n1"), HostIds.Compute([1, .. key[1..]], "a", "n1"));
        Assert.Equal("", HostIds.Compute(key, "a", ""));
    }
}
