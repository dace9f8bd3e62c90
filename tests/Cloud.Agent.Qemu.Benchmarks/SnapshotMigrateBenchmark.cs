using System.Diagnostics;
using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu.Benchmarks;

/// <summary>
/// What snapshots add to a move: a 256 MiB guest with a 1 GB disk, live-migrated between two
/// agents (127.0.0.2 to 127.0.0.3) with 0, 1 and 5 memory snapshots, from PrepareMigration (which
/// now pulls and checks every snapshot) to the source reporting completion. Each round runs the
/// three back to back, in alternating order, and the ratios are taken within a round, so that
/// load from elsewhere on the host hits all three alike. Also: the bytes a snapshot is made of
/// and the time its transfer adds, per snapshot.
/// </summary>
internal static class SnapshotMigrateBenchmark
{
    private const int Rounds = 7;
    private static readonly int[] Counts = [0, 1, 5];
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);

    public static async Task RunAsync(CancellationToken cancellationToken)
    {
        var root = Workspace.Create();
        try
        {
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

    private sealed record Move(double TotalMs, double PrepareMs, long SnapshotBytes);

    private static async Task<Move> MoveAsync(AgentProcess source, AgentProcess destination, string vmId, int snapshots, CancellationToken cancellationToken)
    {
        var spec = new VmSpec { VmId = vmId, Name = vmId, Start = true, Shape = new VmShape { Vcpus = 1, MemoryMb = 256, DiskGb = 1 } };
        var vm = await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, AgentProcess.Deadline(cancellationToken));
        if (vm.State != VmState.Running)
        {
            throw new InvalidOperationException($"VM {vmId} is {vm.State}: {vm.Error}");
        }
        await Task.Delay(Settle, cancellationToken);
        long bytes = 0;
        for (var i = 0; i < snapshots; i++)
        {
            var taken = await source.Client.CreateSnapshotAsync(new CreateSnapshotRequest { VmId = vmId, SnapshotId = $"s{i}", Name = $"s{i}" }, AgentProcess.Deadline(cancellationToken));
            bytes += taken.Files.Sum(f => f.SizeBytes);
        }
        var timer = Stopwatch.StartNew();
        var prepared = await destination.Client.PrepareMigrationAsync(
            new PrepareMigrationRequest { Spec = spec, MigrationId = vmId, SnapshotSource = source.Url }, AgentProcess.Deadline(cancellationToken));
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
