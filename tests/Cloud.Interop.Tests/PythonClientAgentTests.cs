using Cloud.Controller.Tests.Support;
using Cloud.Interop.Tests.Support;

namespace Cloud.Interop.Tests;

/// <summary>python3-grpcio calling a node agent (the fake backend): reflection, health and a NodeAgent call.</summary>
[Collection(InteropCollection.Name)]
public sealed class PythonClientAgentTests(InteropFixture interop)
{
    private string Agent => InteropFixture.Target(interop.Cloud.AgentUrls[0]);

    [Fact]
    public async Task Reflection_lists_the_node_agent_and_serves_its_descriptor()
    {
        var result = await interop.ProbeAsync(interop.AsController, "reflect", Agent, "cloud.agent.v1.NodeAgent");

        foreach (var version in new[] { "v1", "v1alpha" })
        {
            var reflected = result.GetProperty(version);
            var services = reflected.GetProperty("services").EnumerateArray().Select(s => s.GetString()).ToList();
            Assert.Contains("cloud.agent.v1.NodeAgent", services);
            Assert.Contains("grpc.health.v1.Health", services);
            Assert.Contains("grpc.reflection.v1.ServerReflection", services);
            Assert.DoesNotContain("cloud.compute.v1.Compute", services);
            var agent = reflected.GetProperty("files").GetProperty("cloud.agent.v1.NodeAgent").EnumerateArray()
                .Single(f => f.Str("name") == "cloud/agent/v1/agent.proto");
            var methods = agent.GetProperty("services").GetProperty("NodeAgent").EnumerateArray().Select(m => m.GetString()).ToList();
            Assert.Contains("GetNodeInfo", methods);
            Assert.Contains("GetConsoleOutput", methods);
        }
    }

    [Fact]
    public async Task Health_of_the_agent_is_serving()
    {
        var result = await interop.ProbeAsync(interop.AsController, "health", Agent, "", "readiness", "liveness");

        Assert.Equal("SERVING", result.Str(""));
        Assert.Equal("SERVING", result.Str("readiness"));
        Assert.Equal("SERVING", result.Str("liveness"));
    }

    [Fact]
    public async Task GetNodeInfo_from_python_reports_the_fake_nodes_inventory()
    {
        var result = await interop.ProbeAsync(interop.AsController, "node-info", Agent);

        Assert.Equal("test-node-1", result.Str("node_name"));
        Assert.Equal("fake", result.Str("hypervisor"));
        Assert.Equal(4, result.GetProperty("inventories").GetProperty("VCPU").GetInt32());
    }

    [Fact]
    public async Task A_python_client_without_a_certificate_or_with_the_wrong_one_gets_nothing_from_the_agent()
    {
        static Dictionary<string, string> Quick(IReadOnlyDictionary<string, string> tls) => new(tls) { ["CLOUD_READY_TIMEOUT"] = "3" };

        var anonymous = await interop.ProbeAsync(Quick(interop.TrustingCa), "node-info", Agent);
        var stranger = await interop.ProbeAsync(Quick(interop.TrustingStranger), "node-info", Agent);
        var controller = await interop.ProbeAsync(Quick(interop.AsController), "node-info", Agent);

        Assert.Equal("NOT_READY", anonymous.Str("code"));
        Assert.Equal("NOT_READY", stranger.Str("code"));
        Assert.Equal("OK", controller.Str("code"));
    }
}
