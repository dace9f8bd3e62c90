using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu.Benchmarks;

/// <summary>
/// Resident memory of the real agent process with 50 idle firmware-only VMs, created through its
/// gRPC API and listed the way heartbeats list them (with usage). QEMU processes are not counted.
/// </summary>
internal static class MemoryBenchmark
{
    private const int Vms = 50;

    public static async Task RunAsync(CancellationToken cancellationToken)
    {
        var root = Workspace.Create();
        try
        {
            await using var agent = await AgentProcess.StartAsync("127.0.0.2", Path.Combine(root, "a"), cancellationToken);
            BenchmarkRunner.Report("agent_rss_idle", agent.RssBytes() / 1048576.0, "MB");
            for (var i = 0; i < Vms; i++)
            {
                var vm = await agent.Client.CreateVmAsync(new CreateVmRequest
                {
                    Spec = new VmSpec { VmId = $"idle-{i}", Name = $"idle-{i}", Start = true, Shape = new VmShape { Vcpus = 1, MemoryMb = 64 } },
                }, AgentProcess.Deadline(cancellationToken));
                if (vm.State != VmState.Running)
                {
                    throw new InvalidOperationException($"VM idle-{i} is {vm.State}: {vm.Error}");
                }
                if (i == 0)
                {
                    BenchmarkRunner.Report("agent_rss_1_vm", agent.RssBytes() / 1048576.0, "MB");
                }
            }
            // Settle as a node does between heartbeats: list (with usage) every second for a while.
            for (var beat = 0; beat < 15; beat++)
            {
                var listed = await agent.Client.ListVmsAsync(new ListVmsRequest(), AgentProcess.Deadline(cancellationToken));
                if (listed.Vms.Count(v => v.State == VmState.Running) != Vms)
                {
                    throw new InvalidOperationException("Not every VM is running: " + string.Join(", ", listed.Vms.Where(v => v.State != VmState.Running).Select(v => v.VmId + " " + v.State)));
                }
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
            BenchmarkRunner.Report("agent_rss_50_vms", agent.RssBytes() / 1048576.0, "MB");
            BenchmarkRunner.Report("agent_rss_anon_50_vms", AgentProcess.ReadStatusKb(agent.Pid, "RssAnon:") / 1024.0, "MB");
            BenchmarkRunner.Report("agent_rss_file_50_vms", AgentProcess.ReadStatusKb(agent.Pid, "RssFile:") / 1024.0, "MB");
            foreach (var (part, kb) in SmapsBreakdown(agent.Pid))
            {
                BenchmarkRunner.Report("agent_smaps_" + part + "_50_vms", kb / 1024.0, "MB");
            }
            BenchmarkRunner.Report("agent_threads_50_vms", AgentProcess.ReadStatusKb(agent.Pid, "Threads:"), "threads");
            BenchmarkRunner.Report("agent_rss_peak", agent.PeakRssBytes() / 1048576.0, "MB");
        }
        finally
        {
            Workspace.Delete(root);
        }
    }

    /// <summary>
    /// Where the resident pages are, from /proc/PID/smaps: the agent's own binary (code and
    /// read-only data), shared libraries, and anonymous memory (GC heap, stacks, native heap).
    /// </summary>
    private static IEnumerable<(string Part, long Kb)> SmapsBreakdown(int pid)
    {
        var parts = new SortedDictionary<string, long>(StringComparer.Ordinal);
        var part = "anon";
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 5 && fields[0].Contains('-', StringComparison.Ordinal) && !fields[0].EndsWith(':'))
            {
                var path = fields.Length >= 6 ? fields[5] : "";
                part = path.Length == 0 || path.StartsWith('[') ? "anon"
                    : Path.GetFileName(path).StartsWith("Cloud.Agent", StringComparison.Ordinal) ? "binary"
                    : path.Contains(".so", StringComparison.Ordinal) ? "libs"
                    : "other_files";
            }
            else if (fields.Length >= 2 && fields[0] == "Rss:")
            {
                parts[part] = parts.GetValueOrDefault(part) + long.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        return parts.Select(p => (p.Key, p.Value));
    }
}
