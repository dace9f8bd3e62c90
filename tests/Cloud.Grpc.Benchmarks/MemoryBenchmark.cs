namespace Cloud.Grpc.Benchmarks;

/// <summary>
/// Resident memory of the agent process (fake backend) idle, then with VMs created through its
/// gRPC API and listed a few times the way heartbeats list them. The fake backend keeps a VM in a
/// few hundred bytes, so what this shows is mostly the agent's own footprint: runtime, gRPC stack,
/// Kestrel, buffers. tests/Cloud.Agent.Qemu.Benchmarks (agent-memory) measures the same with QEMU guests.
/// </summary>
internal static class MemoryBenchmark
{
    public static async Task RunAsync(AgentProcess agent, BenchmarkOptions options, Reporter report, CancellationToken cancellationToken)
    {
        await Settle(agent, expected: 0, cancellationToken);
        report.Add("grpc.agent_rss.idle", agent.StatusKb("VmRSS:") / 1024.0, "MB");
        for (var i = 0; i < options.Vms; i++)
        {
            await agent.Client.CreateRunningVmAsync($"bench-{i}", cancellationToken);
        }
        await Settle(agent, options.Vms, cancellationToken);
        report.Add($"grpc.agent_rss.{options.Vms}_vms", agent.StatusKb("VmRSS:") / 1024.0, "MB");
    }

    /// <summary>Ten listings 200 ms apart (2 s), each of which must find <paramref name="expected"/> VMs running.</summary>
    private static async Task Settle(AgentProcess agent, int expected, CancellationToken cancellationToken)
    {
        for (var beat = 0; beat < 10; beat++)
        {
            var running = await agent.Client.CountRunningVmsAsync(cancellationToken);
            if (running != expected)
            {
                throw new InvalidOperationException($"The agent lists {running} running VMs, not {expected}.");
            }
            await Task.Delay(200, cancellationToken);
        }
    }
}
