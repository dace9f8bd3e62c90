using System.Diagnostics;
using Cloud.Contracts.Agent.V1;
using Cloud.Testing;

namespace Cloud.Agent.Qemu.Benchmarks;

/// <summary>
/// What snapshots add to a move: a 256 MiB Linux guest with a 1 GB disk, live-migrated between two
/// agents (127.0.0.2 to 127.0.0.3) with 0, 1 and 5 memory snapshots, from PrepareMigration (which
/// pulls and checks every snapshot) to the source reporting completion. The guest fills 160 MiB
/// of its RAM with random bytes at boot, so that its memory (and each snapshot's memory state)
/// is a busy guest's, not the zero pages of an idle one. Each round runs the three back to back,
/// in alternating order, and the ratios are taken within a round, so that load from elsewhere on
/// the host hits all three alike. Also: the bytes a snapshot is made of and the time its transfer
/// adds, per snapshot.
/// </summary>
internal static class SnapshotMigrateBenchmark
{
    private const int Rounds = 3;
    private const int FillMb = 160;
    private const string Image = "linux-busy";
    private static readonly int[] Counts = [0, 1, 5];
    private static readonly TimeSpan Boot = TimeSpan.FromMinutes(3);

    public static async Task RunAsync(CancellationToken cancellationToken)
    {
        var root = Workspace.Create();
        try
        {
            var (kernel, initrd) = await Cloud.Agent.Qemu.Tests.Support.LinuxGuest.EnsureAsync();
            foreach (var node in new[] { "a", "b" })
            {
                // Put in each node's image store by hand, as an operator seeds one.
                await using var store = new QemuHypervisor(new QemuOptions { DataDirectory = Path.Combine(root, node), Accelerator = "tcg" });
                await store.Images.ImportKernelAsync(Image, kernel, initrd, $"{Cloud.Agent.Qemu.Tests.Support.LinuxGuest.Append} cloud.fill_mb={FillMb}", cancellationToken);
            }
            await using var source = await AgentProcess.StartAsync("127.0.0.2", Path.Combine(root, "a"), cancellationToken);
            await using var destination = await AgentProcess.StartAsync("127.0.0.3", Path.Combine(root, "b"), cancellationToken);
            var runs = Counts.ToDictionary(k => k, _ => new List<Move>());
            for (var round = -1; round < Rounds; round++)
            {
                // Round -1 warms everything up and is not counted.
                foreach (var count in round % 2 == 0 ? Counts : Counts.Reverse())
                {
                    var move = await MoveAsync(source, destination, $"snapmig-{round + 1}-{count}", count, cancellationToken);
                    if (round >= 0)
                    {
                        runs[count].Add(move);
                    }
                }
            }
            foreach (var count in Counts)
            {
                BenchmarkRunner.Report($"snapshot_migrate_{count}_median", BenchmarkRunner.Median([.. runs[count].Select(m => m.TotalMs)]), "ms");
                BenchmarkRunner.Report($"snapshot_migrate_{count}_prepare_median", BenchmarkRunner.Median([.. runs[count].Select(m => m.PrepareMs)]), "ms");
                if (count > 0)
                {
                    BenchmarkRunner.Report($"snapshot_migrate_{count}_ratio", BenchmarkRunner.Median([.. runs[count].Zip(runs[0], (m, none) => m.TotalMs / none.TotalMs)]), "x");
                    BenchmarkRunner.Report($"snapshot_migrate_{count}_bytes_per_snapshot_median", BenchmarkRunner.Median([.. runs[count].Select(m => (double)m.SnapshotBytes / count)]), "bytes");
                    BenchmarkRunner.Report($"snapshot_migrate_{count}_added_ms_per_snapshot_median",
                        BenchmarkRunner.Median([.. runs[count].Zip(runs[0], (m, none) => (m.PrepareMs - none.PrepareMs) / count)]), "ms");
                }
            }
        }
        finally
        {
            Workspace.Delete(root);
        }
    }

    /// <summary>The guest prints its first tick once its RAM is filled.</summary>
    private static async Task WaitForFirstTickAsync(string serialLog, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + Boot;
        while (!File.Exists(serialLog) || !(await File.ReadAllTextAsync(serialLog, cancellationToken)).Contains("tick=1 ", StringComparison.Ordinal))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The guest printed no tick within {Boot.TotalMinutes} minutes ({serialLog}).");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
        }
    }

    private sealed record Move(double TotalMs, double PrepareMs, long SnapshotBytes);

    private static async Task<Move> MoveAsync(AgentProcess source, AgentProcess destination, string vmId, int snapshots, CancellationToken cancellationToken)
    {
        var spec = new VmSpec { VmId = vmId, Name = vmId, Image = Image, Start = true, Shape = new VmShape { Vcpus = 1, MemoryMb = 256, DiskGb = 1 } };
        var vm = await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, AgentProcess.Deadline(cancellationToken));
        if (vm.State != VmState.Running)
        {
            throw new InvalidOperationException($"VM {vmId} is {vm.State}: {vm.Error}");
        }
        await WaitForFirstTickAsync(Path.Combine(source.VmDirectory(vmId), "serial.log"), cancellationToken);
        long bytes = 0;
        for (var i = 0; i < snapshots; i++)
        {
            var taken = await source.Client.CreateSnapshotAsync(new CreateSnapshotRequest { VmId = vmId, SnapshotId = $"s{i}", Name = $"s{i}" }, AgentProcess.Deadline(cancellationToken));
            bytes += taken.Files.Sum(f => f.SizeBytes);
        }
        var timer = Stopwatch.StartNew();
        var prepared = await destination.Client.PrepareMigrationAsync(
            new PrepareMigrationRequest { Spec = spec, MigrationId = vmId, SnapshotSource = source.Url,
                SnapshotGrant = TestTrust.Shared.SnapshotGrant(AgentProcess.NodeNameFor(new Uri(destination.Url).Host), AgentProcess.NodeNameFor(new Uri(source.Url).Host), spec.VmId) }, AgentProcess.Deadline(cancellationToken));
        var prepare = timer.Elapsed.TotalMilliseconds;
        if (prepared.SnapshotIds.Count != snapshots)
        {
            throw new InvalidOperationException($"The destination took in {prepared.SnapshotIds.Count} of {snapshots} snapshots.");
        }
        await source.MigrateAsync(new MigrateRequest { VmId = vmId, MigrationId = vmId, MigrationUri = prepared.MigrationUri, DiskUri = prepared.DiskUri }, cancellationToken);
        var total = timer.Elapsed.TotalMilliseconds;
        await destination.Client.DeleteVmAsync(new VmRef { VmId = vmId }, AgentProcess.Deadline(cancellationToken));
        return new Move(total, prepare, bytes);
    }
}
