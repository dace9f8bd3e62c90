using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Cloud.Contracts.Agent.V1;
using Cloud.Qmp;

namespace Cloud.Agent.Qemu.Benchmarks;

/// <summary>
/// Live migration of a 256 MiB guest between two agents (127.0.0.2 to 127.0.0.3), from
/// PrepareMigration on the destination to the source reporting completion (its QEMU gone),
/// against the same done by hand over QMP: start the destination QEMU with the same command line
/// and -incoming defer, migrate-incoming, set the capabilities the agent sets (events and
/// auto-converge), migrate, wait for completion, quit the source.
/// On this host most of either figure is QEMU's own stream, and that varies from 0.1 s to 1 s
/// between runs of the same guest (first touches of the guest's memory, zeroed by the host's
/// kernel on both sides): hence many runs, in alternating order, and besides the ratio the time
/// each side spends outside QEMU's stream, which is what the agent adds.
/// </summary>
internal static class MigrateBenchmark
{
    private const int Runs = 21;

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

            var viaAgents = new List<Timing>();
            var bare = new List<Timing>();
            for (var run = -1; run < Runs; run++)
            {
                // Run -1 warms both paths up and is not counted. The order alternates, so that
                // neither side always runs on a host the other just left busy.
                Timing agentRun, bareRun;
                if (run % 2 == 0)
                {
                    agentRun = await ThroughAgentsAsync(source, destination, $"mig-{run + 1}", cancellationToken);
                    bareRun = await BareAsync(sourceArgs, destinationArgs, bareSourceDir, bareDestinationDir, cancellationToken);
                }
                else
                {
                    bareRun = await BareAsync(sourceArgs, destinationArgs, bareSourceDir, bareDestinationDir, cancellationToken);
                    agentRun = await ThroughAgentsAsync(source, destination, $"mig-{run + 1}", cancellationToken);
                }
                if (run >= 0)
                {
                    viaAgents.Add(agentRun);
                    bare.Add(bareRun);
                }
            }
            BenchmarkRunner.ReportPairs("migrate", "bare_qmp", [.. viaAgents.Select(t => t.Total)], [.. bare.Select(t => t.Total)]);
            foreach (var (side, runs) in new[] { ("agent", viaAgents), ("bare_qmp", bare) })
            {
                BenchmarkRunner.Report($"migrate_{side}_prepare_median", BenchmarkRunner.Median([.. runs.Select(t => t.Prepare)]), "ms");
                BenchmarkRunner.Report($"migrate_{side}_qemu_stream_median", BenchmarkRunner.Median([.. runs.Select(t => t.QemuStream)]), "ms");
                BenchmarkRunner.Report($"migrate_{side}_outside_stream_median", BenchmarkRunner.Median([.. runs.Select(t => t.Total - t.QemuStream)]), "ms");
            }
        }
        finally
        {
            Workspace.Delete(root);
        }
    }

    /// <summary>One migration: in all, the destination's prepare, and QEMU's own total-time of the stream.</summary>
    private sealed record Timing(double Total, double Prepare, double QemuStream);

    private static async Task<Timing> ThroughAgentsAsync(AgentProcess source, AgentProcess destination, string vmId, CancellationToken cancellationToken)
    {
        await CreateAsync(source, vmId, cancellationToken);
        await Task.Delay(Settle, cancellationToken);
        var spec = Spec(vmId);
        var timer = Stopwatch.StartNew();
        var prepared = await destination.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = vmId }, AgentProcess.Deadline(cancellationToken));
        var prepare = timer.Elapsed.TotalMilliseconds;
        var last = await source.MigrateAsync(new MigrateRequest { VmId = vmId, MigrationId = vmId, MigrationUri = prepared.MigrationUri, DiskUri = prepared.DiskUri }, cancellationToken);
        var elapsed = timer.Elapsed.TotalMilliseconds;
        await destination.Client.DeleteVmAsync(new VmRef { VmId = vmId }, AgentProcess.Deadline(cancellationToken));
        return new Timing(elapsed, prepare, last.TotalTimeMs);
    }

    private static async Task<Timing> BareAsync(List<string> sourceArgs, List<string> destinationArgs, string sourceDir, string destinationDir, CancellationToken cancellationToken)
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
            ["capabilities"] = new JsonArray(
                new JsonObject { ["capability"] = "events", ["state"] = true },
                new JsonObject { ["capability"] = "auto-converge", ["state"] = true }),
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
        // QEMU's own figure, read outside the timed path.
        var asked = timer.Elapsed;
        var info = await source.Qmp.ExecuteAsync("query-migrate", null, cancellationToken);
        var askedFor = timer.Elapsed - asked;
        await source.DisposeAsync();
        return new Timing((timer.Elapsed - askedFor).TotalMilliseconds, prepare, info.GetProperty("total-time").GetInt64());
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
