using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Cloud.Controller.Data;
using Cloud.Controller.Data.Embedded;
using Cloud.Controller.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Cloud.Scheduler.Benchmarks;

/// <summary>
/// kill -9 of PostgreSQL while two replicas place VMs in batches and one by one; then the
/// cluster restarts (crash recovery) and the checks run: zero invariant violations, and every
/// VM whose placement was acknowledged is still there with its claim.
/// </summary>
internal static class ChaosBench
{
    public static async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"cloud-bench-chaos-{Environment.ProcessId}");
        var options = new EmbeddedPostgresOptions { DataDirectory = folder, Durable = true, Database = "bench_chaos", MaxConnections = 300 };
        var first = await EmbeddedPostgres.StartAsync(options, NullLogger.Instance, cancellationToken);
        await DatabaseMigrator.MigrateAsync(first.ConnectionString, cancellationToken);
        var replicas = new[]
        {
            await ControllerReplica.StartAsync(first.ConnectionString, "spread", 100),
            await ControllerReplica.StartAsync(first.ConnectionString, "spread", 100),
        };
        await HollowNodes.RegisterAsync(replicas[0].NodeUrl, 1_000, 64, 2.0, 512 * 1024, cancellationToken);

        var acknowledged = new ConcurrentBag<Guid>();
        var failures = 0;
        var workers = StartWorkers(replicas, acknowledged.Add, () => Interlocked.Increment(ref failures), cancellationToken);

        await Task.Delay(TimeSpan.FromSeconds(5), cancellationToken);
        var postmaster = int.Parse((await File.ReadAllLinesAsync(Path.Combine(folder, "pgdata", "postmaster.pid"), cancellationToken))[0], CultureInfo.InvariantCulture);
        var killedAfter = acknowledged.Count;
        Process.GetProcessById(postmaster).Kill();
        await Task.WhenAll(workers);
        Metric("chaos_acknowledged_before_kill", killedAfter, "VMs");
        Metric("chaos_acknowledged", acknowledged.Count, "VMs");
        Metric("chaos_workers_cut_off", failures, "workers");
        foreach (var replica in replicas)
        {
            try
            {
                await replica.DisposeAsync();
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException or AggregateException or OperationCanceledException)
            {
                // A replica whose database died mid-call may not stop cleanly; it is gone either way.
            }
        }

        // The first instance is left as it is: its server is dead, and stopping it would stop
        // the restarted one. A killed postmaster nobody reaps stays a zombie, which pg_ctl takes
        // for a live server: once it is dead or a zombie, its pid file goes, and the restart
        // recovers from the WAL (retried while the old backends notice and exit).
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (IsRunning(postmaster) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, cancellationToken);
        }
        File.Delete(Path.Combine(folder, "pgdata", "postmaster.pid"));
        var restartOptions = new EmbeddedPostgresOptions { DataDirectory = folder, Durable = true, Database = "bench_chaos", DeleteOnStop = true };
        EmbeddedPostgres? restarted = null;
        while (restarted is null)
        {
            try
            {
                restarted = await EmbeddedPostgres.StartAsync(restartOptions, NullLogger.Instance, cancellationToken);
            }
            catch (InvalidOperationException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(500, cancellationToken);
            }
        }
        await using var second = restarted;
        await using var dataSource = NpgsqlDataSource.Create(second.ConnectionString);
        var violations = await LedgerInvariants.CheckAsync(dataSource, cancellationToken);
        foreach (var violation in violations.Take(10))
        {
            Console.Error.WriteLine(violation);
        }
        var lost = await LostAsync(dataSource, acknowledged, cancellationToken);
        Metric("chaos_acknowledged_lost", lost, "VMs");
        Metric("chaos_vms_after_recovery", await SimulatorSql.ScalarAsync(dataSource, "SELECT count(*) FROM vms", cancellationToken), "VMs");
        Metric("invariant_violations", violations.Count, "violations");
        var controllerKill = await KillControllerAsync(second.ConnectionString, dataSource, cancellationToken);
        return violations.Count == 0 && lost == 0 && controllerKill == 0 ? 0 : 1;
    }

    /// <summary>
    /// kill -9 of the controllers: the placing replicas run in a child process that prints each
    /// acknowledged VM; it is killed mid-run, and the database must hold every one of them.
    /// </summary>
    private static async Task<int> KillControllerAsync(string connectionString, NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        var self = Environment.ProcessPath!;
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            start.ArgumentList.Add(typeof(ChaosBench).Assembly.Location);
        }
        start.ArgumentList.Add("place-worker");
        start.Environment["CLOUD_BENCH_CONNECTION"] = connectionString;
        using var child = Process.Start(start)!;
        var acknowledged = new List<Guid>();
        var killed = false;
        var started = Stopwatch.GetTimestamp();
        string? line;
        while ((line = await child.StandardOutput.ReadLineAsync(cancellationToken)) is not null)
        {
            if (line.StartsWith("ack ", StringComparison.Ordinal))
            {
                acknowledged.Add(Guid.Parse(line.AsSpan(4)));
            }
            if (!killed && acknowledged.Count > 0 && Stopwatch.GetElapsedTime(started) > TimeSpan.FromSeconds(8))
            {
                child.Kill(entireProcessTree: true);
                killed = true;
            }
        }
        await child.WaitForExitAsync(cancellationToken);

        var violations = await LedgerInvariants.CheckAsync(dataSource, cancellationToken);
        foreach (var violation in violations.Take(10))
        {
            Console.Error.WriteLine(violation);
        }
        var lost = await LostAsync(dataSource, acknowledged, cancellationToken);
        Metric("chaos_controller_killed", killed ? 1 : 0, "kills");
        Metric("chaos_controller_acknowledged", acknowledged.Count, "VMs");
        Metric("chaos_controller_acknowledged_lost", lost, "VMs");
        Metric("invariant_violations", violations.Count, "violations");
        return killed && violations.Count == 0 && lost == 0 ? 0 : 1;
    }

    /// <summary>The child side of <see cref="KillControllerAsync"/>: places until killed, printing each acknowledged VM.</summary>
    public static async Task<int> PlaceWorkerAsync(CancellationToken cancellationToken)
    {
        var connectionString = Environment.GetEnvironmentVariable("CLOUD_BENCH_CONNECTION")
            ?? throw new InvalidOperationException("CLOUD_BENCH_CONNECTION is not set.");
        var replicas = new[]
        {
            await ControllerReplica.StartAsync(connectionString, "spread", 100),
            await ControllerReplica.StartAsync(connectionString, "spread", 100),
        };
        var output = Console.Out;
        await Task.WhenAll(StartWorkers(replicas, vm =>
        {
            lock (output)
            {
                output.WriteLine($"ack {vm}");
                output.Flush();
            }
        }, () => { }, cancellationToken));
        return 0;
    }

    /// <summary>Four workers placing batches of 50 and eight placing one VM at a time, until the database fails them.</summary>
    private static List<Task> StartWorkers(ControllerReplica[] replicas, Action<Guid> acknowledge, Action failed, CancellationToken cancellationToken)
        => [.. Enumerable.Range(0, 12).Select(w => Task.Run(async () =>
        {
            var trace = new VmTrace(100 + w);
            var scheduler = replicas[w % 2].Scheduler;
            try
            {
                while (!cancellationToken.IsCancellationRequested)
                {
                    if (w < 4)
                    {
                        foreach (var placed in (await TracePlacement.PlaceBatchAsync(scheduler, trace, 50, cancellationToken)).Placed)
                        {
                            acknowledge(placed.Item.ConsumerId);
                        }
                    }
                    else if (await TracePlacement.PlaceOneAsync(scheduler, trace.Next(), cancellationToken) is { } vm)
                    {
                        acknowledge(vm);
                    }
                }
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException or IOException)
            {
                // The server is gone: this worker's in-flight placement was never acknowledged.
                failed();
            }
        }, cancellationToken))];

    private static async Task<long> LostAsync(NpgsqlDataSource dataSource, IEnumerable<Guid> acknowledged, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT count(*) FROM unnest($1::uuid[]) AS v(id)
             WHERE NOT EXISTS (SELECT 1 FROM vms WHERE vms.id = v.id AND vms.node_id IS NOT NULL)
                OR NOT EXISTS (SELECT 1 FROM allocations AS a JOIN vms ON vms.id = a.consumer_id AND vms.node_id = a.node_id WHERE a.consumer_id = v.id)
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = acknowledged.ToArray() });
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }

    /// <summary>Alive and not a zombie, from /proc.</summary>
    private static bool IsRunning(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return false;
        }
    }

    private static void Metric(string name, long value, string unit)
        => Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: {value} {unit}"));
}
