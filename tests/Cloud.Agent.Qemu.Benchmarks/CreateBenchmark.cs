using System.Diagnostics;
using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu.Benchmarks;

/// <summary>
/// Create-to-running through the agent (gRPC CreateVm with start, answered once QEMU runs) against
/// starting the same QEMU command line directly and waiting for the same readiness (the monitor
/// answers, query-status). Runs alternate so that load from elsewhere hits both sides alike.
/// </summary>
internal static class CreateBenchmark
{
    private const int Runs = 21;

    public static async Task RunAsync(CancellationToken cancellationToken)
    {
        var root = Workspace.Create();
        try
        {
            await using var agent = await AgentProcess.StartAsync("127.0.0.2", Path.Combine(root, "a"), cancellationToken);
            var bareDir = Path.Combine(root, "bare");
            Directory.CreateDirectory(bareDir);

            foreach (var (label, diskGb) in new[] { ("create", 0), ("create_with_disk", 1) })
            {
                // A first VM (not timed) warms both paths and gives the command line to start bare.
                var template = await CreateAsync(agent, $"{label}-warm", diskGb, cancellationToken);
                var args = BareQemu.CommandLineOf(template.Pid, agent.VmDirectory(template.VmId), bareDir);
                if (diskGb > 0)
                {
                    File.Copy(Path.Combine(agent.VmDirectory(template.VmId), "disk.qcow2"), Path.Combine(bareDir, "disk.qcow2"), overwrite: true);
                }
                await agent.Client.DeleteVmAsync(new VmRef { VmId = template.VmId }, AgentProcess.Deadline(cancellationToken));
                await using (await BareQemu.StartAsync(args, bareDir, cancellationToken))
                {
                }

                var viaAgent = new List<double>();
                var bare = new List<double>();
                for (var run = 0; run < Runs; run++)
                {
                    var timer = Stopwatch.StartNew();
                    var vm = await CreateAsync(agent, $"{label}-{run}", diskGb, cancellationToken);
                    viaAgent.Add(timer.Elapsed.TotalMilliseconds);
                    await agent.Client.DeleteVmAsync(new VmRef { VmId = vm.VmId }, AgentProcess.Deadline(cancellationToken));

                    timer.Restart();
                    var qemu = await BareQemu.StartAsync(args, bareDir, cancellationToken);
                    bare.Add(timer.Elapsed.TotalMilliseconds);
                    await qemu.DisposeAsync();
                }
                BenchmarkRunner.ReportPairs(label, "bare_qemu", viaAgent, bare);

                // Where the agent's time goes: the VM's files (create without start), then the start.
                var files = new List<double>();
                var starts = new List<double>();
                for (var run = 0; run < Runs; run++)
                {
                    var vmId = $"{label}-split-{run}";
                    var timer = Stopwatch.StartNew();
                    await agent.Client.CreateVmAsync(new CreateVmRequest { Spec = Spec(vmId, diskGb, start: false) }, AgentProcess.Deadline(cancellationToken));
                    files.Add(timer.Elapsed.TotalMilliseconds);
                    timer.Restart();
                    await agent.Client.StartVmAsync(new StartVmRequest { VmId = vmId }, AgentProcess.Deadline(cancellationToken));
                    starts.Add(timer.Elapsed.TotalMilliseconds);
                    await agent.Client.DeleteVmAsync(new VmRef { VmId = vmId }, AgentProcess.Deadline(cancellationToken));
                }
                BenchmarkRunner.Report($"{label}_agent_files_median", BenchmarkRunner.Median(files), "ms");
                BenchmarkRunner.Report($"{label}_agent_start_median", BenchmarkRunner.Median(starts), "ms");
            }
        }
        finally
        {
            Workspace.Delete(root);
        }
    }

    private static async Task<Vm> CreateAsync(AgentProcess agent, string vmId, int diskGb, CancellationToken cancellationToken)
    {
        var vm = await agent.Client.CreateVmAsync(new CreateVmRequest { Spec = Spec(vmId, diskGb, start: true) }, AgentProcess.Deadline(cancellationToken));
        return vm.State == VmState.Running ? vm : throw new InvalidOperationException($"VM {vmId} is {vm.State} after create: {vm.Error}");
    }

    private static VmSpec Spec(string vmId, int diskGb, bool start)
        => new() { VmId = vmId, Name = vmId, Start = start, Shape = new VmShape { Vcpus = 1, MemoryMb = 128, DiskGb = diskGb } };
}
