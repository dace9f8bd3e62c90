using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Cloud.Contracts.Agent.V1;
using Cloud.Qmp;
using Phase = Cloud.Contracts.Agent.V1.MigrationProgress.Types.Phase;

namespace Cloud.Agent.Qemu.Benchmarks;

/// <summary>
/// Live migration of a 256 MiB guest between two agents (127.0.0.2 to 127.0.0.3), from
/// PrepareMigration on the destination to the source reporting completion (its QEMU gone),
/// against the same done by hand over QMP: start the destination QEMU with the same command line
/// and -incoming defer, migrate-incoming, migrate, wait for completion, quit the source.
/// </summary>
internal static class MigrateBenchmark
{
    private const int Runs = 7;

    // Guests boot their firmware for about a second; migrating while that runs would measure it.
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);

    public static async Task RunAsync(CancellationToken cancellationToken)
    {
        var root = Workspace.Create();
        try
        {
            await using var source = await AgentProcess.StartAsync("127.0.0.2", Path.Combine(root, "a"), cancellationToken);
            await using var destination = await AgentProcess.StartAsync("127.0.0.3", Path.Combine(root, "b"), cancellationToken);
            var bareSourceDir = Path.Combine(root, "bare-src");
            var bareDestinationDir = Path.Combine(root, "bare-dst");
            Directory.CreateDirectory(bareSourceDir);
            Directory.CreateDirectory(bareDestinationDir);

            var template = await CreateAsync(source, "mig-template", cancellationToken);
            var sourceArgs = BareQemu.CommandLineOf(template.Pid, source.VmDirectory(template.VmId), bareSourceDir);
            var destinationArgs = BareQemu.CommandLineOf(template.Pid, source.VmDirectory(template.VmId), bareDestinationDir);
            destinationArgs.AddRange(["-incoming", "defer"]);
            await source.Client.DeleteVmAsync(new VmRef { VmId = template.VmId }, AgentProcess.Deadline(cancellationToken));

            var viaAgents = new List<double>();
            var bare = new List<double>();
            // Where each side's time goes: the destination made ready, then the stream to completion.
            var agentPrepare = new List<double>();
            var barePrepare = new List<double>();
            for (var run = -1; run < Runs; run++)
            {
                // Run -1 warms both paths up and is not counted.
                var (agentMs, agentPrepareMs) = await ThroughAgentsAsync(source, destination, $"mig-{run + 1}", cancellationToken);
                var (bareMs, barePrepareMs) = await BareAsync(sourceArgs, destinationArgs, bareSourceDir, bareDestinationDir, cancellationToken);
                if (run >= 0)
                {
                    viaAgents.Add(agentMs);
                    bare.Add(bareMs);
                    agentPrepare.Add(agentPrepareMs);
                    barePrepare.Add(barePrepareMs);
                }
            }
            BenchmarkRunner.ReportPairs("migrate", "bare_qmp", viaAgents, bare);
            BenchmarkRunner.Report("migrate_agent_prepare_median", BenchmarkRunner.Median(agentPrepare), "ms");
            BenchmarkRunner.Report("migrate_bare_qmp_prepare_median", BenchmarkRunner.Median(barePrepare), "ms");
        }
        finally
        {
            Workspace.Delete(root);
        }
    }

    private static async Task<(double Total, double Prepare)> ThroughAgentsAsync(AgentProcess source, AgentProcess destination, string vmId, CancellationToken cancellationToken)
    {
        var vm = await CreateAsync(source, vmId, cancellationToken);
        await Task.Delay(Settle, cancellationToken);
        var spec = Spec(vmId);
        var timer = Stopwatch.StartNew();
        var prepared = await destination.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = vmId }, AgentProcess.Deadline(cancellationToken));
        var prepare = timer.Elapsed.TotalMilliseconds;
        using var call = source.Client.Migrate(new MigrateRequest { VmId = vmId, MigrationId = vmId, MigrationUri = prepared.MigrationUri, DiskUri = prepared.DiskUri }, AgentProcess.Deadline(cancellationToken));
        MigrationProgress? last = null;
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            last = call.ResponseStream.Current;
        }
        var elapsed = timer.Elapsed.TotalMilliseconds;
        if (last?.Phase != Phase.Completed)
        {
            throw new InvalidOperationException($"Migration of {vm.VmId} ended {last?.Phase}: {last?.Error}");
        }
        await destination.Client.DeleteVmAsync(new VmRef { VmId = vmId }, AgentProcess.Deadline(cancellationToken));
        return (elapsed, prepare);
    }

    private static async Task<(double Total, double Prepare)> BareAsync(List<string> sourceArgs, List<string> destinationArgs, string sourceDir, string destinationDir, CancellationToken cancellationToken)
    {
        var source = await BareQemu.StartAsync(sourceArgs, sourceDir, cancellationToken);
        await Task.Delay(Settle, cancellationToken);
        var timer = Stopwatch.StartNew();
        await using var destination = await BareQemu.StartAsync(destinationArgs, destinationDir, cancellationToken);
        var uri = "tcp:127.0.0.3:" + AgentProcess.FreePort("127.0.0.3").ToString(CultureInfo.InvariantCulture);
        await destination.Qmp.ExecuteAsync("migrate-incoming", new JsonObject { ["uri"] = uri }, cancellationToken);
        var prepare = timer.Elapsed.TotalMilliseconds;
        await source.Qmp.ExecuteAsync("migrate-set-capabilities", new JsonObject
        {
            ["capabilities"] = new JsonArray(new JsonObject { ["capability"] = "events", ["state"] = true }),
        }, cancellationToken);
        await source.Qmp.ExecuteAsync("migrate", new JsonObject { ["uri"] = uri }, cancellationToken);
        await foreach (var qmpEvent in source.Qmp.Events.ReadAllAsync(cancellationToken))
        {
            if (qmpEvent.Name == "MIGRATION" && qmpEvent.Data.GetProperty("status").GetString() is "completed" or "failed" or "cancelled")
            {
                if (qmpEvent.Data.GetProperty("status").GetString() != "completed")
                {
                    throw new InvalidOperationException("The bare migration did not complete: " + qmpEvent.Data);
                }
                break;
            }
        }
        await source.DisposeAsync();
        return (timer.Elapsed.TotalMilliseconds, prepare);
    }

    private static async Task<Vm> CreateAsync(AgentProcess agent, string vmId, CancellationToken cancellationToken)
    {
        var vm = await agent.Client.CreateVmAsync(new CreateVmRequest { Spec = Spec(vmId) }, AgentProcess.Deadline(cancellationToken));
        return vm.State == VmState.Running ? vm : throw new InvalidOperationException($"VM {vmId} is {vm.State}: {vm.Error}");
    }

    private static VmSpec Spec(string vmId) => new()
    {
        VmId = vmId,
        Name = vmId,
        Start = true,
        Shape = new VmShape { Vcpus = 1, MemoryMb = 256, DiskGb = 0 },
    };
}
