using Grpc.Net.Client;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Tests.Support;

/// <summary>Clients of the nodes' agents, calling as the controller does, to check what QEMU really runs; their channels close with the test.</summary>
internal sealed class AgentClients(CloudFixture cloud) : IDisposable
{
    private readonly List<GrpcChannel> _channels = [];

    /// <summary>The agent of the node the controller knows by <paramref name="nodeName"/>.</summary>
    public async Task<AgentV1.NodeAgent.NodeAgentClient> ForAsync(string nodeName)
    {
        var (_, nodes) = await cloud.Http.GetJsonAsync("/v1/nodes");
        return ForAddress(new Uri(nodes.GetProperty("nodes").EnumerateArray().Single(n => n.Str("name") == nodeName).Str("address")));
    }

    public AgentV1.NodeAgent.NodeAgentClient ForAddress(Uri address)
    {
        var channel = cloud.NewAgentChannel(address);
        _channels.Add(channel);
        return new AgentV1.NodeAgent.NodeAgentClient(channel);
    }

    public void Dispose()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }
    }
}
