using System.Diagnostics;
using System.Globalization;
using Cloud.Controller.Data;
using Cloud.Controller.Data.Embedded;
using Cloud.Controller.Scheduling;
using Cloud.Contracts.Compute.V1;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Cloud.Scheduler.Benchmarks;

internal sealed class BenchSettings
{
    public int Nodes { get; init; }
    public int Vms { get; init; }
    public int Seconds { get; init; }

    /// <summary>Print where the time went (<see cref="SpanProfile"/>) after each benchmark.</summary>
    public bool Profile { get; init; }
}

/// <summary>
/// The benchmarks. Each cloud is a fresh database on one durable embedded PostgreSQL
/// (fsync and synchronous_commit on, its defaults), with controllers hosted in this process.
/// </summary>
internal sealed class SchedulerBench : IAsyncDisposable
{
    private const int BatchSize = 500;

    /// <summary>Seconds of load before the latency benchmark starts counting (and thousands of VMs before the single one does).</summary>
    private const int WarmUpSeconds = 10;

    private readonly BenchSettings _settings;
    private readonly EmbeddedPostgres _postgres;
    private readonly SpanProfile? _profile;
    private int _violations;

    private SchedulerBench(BenchSettings settings, EmbeddedPostgres postgres)
    {
        _settings = settings;
        _postgres = postgres;
        _profile = settings.Profile ? new SpanProfile() : null;
    }

    public static async Task<SchedulerBench> StartAsync(BenchSettings settings, CancellationToken cancellationToken)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"cloud-bench-{Environment.ProcessId}");
        var postgres = await EmbeddedPostgres.StartAsync(
            new EmbeddedPostgresOptions
            {
                DataDirectory = folder, Durable = true, DeleteOnStop = true, MaxConnections = 300,
                ExtraSettings = settings.Profile ? StatementProfile.ServerSettings : [],
            },
            NullLogger.Instance, cancellationToken);
        return new SchedulerBench(settings, postgres);
    }

    public async Task<int> RunAsync(string name, CancellationToken cancellationToken)
    {
        Metric("synchronous_commit", await SettingAsync("synchronous_commit", cancellationToken), "");
        if (name is "all" or "batch" or "single" or "latency" or "memory" or "capacity")
        {
            await using var cloud = await NewCloudAsync("large", _settings.Nodes, vcpus: 64, cpuRatio: 2.0, memoryMb: 512 * 1024, policy: "spread", maxFeasible: 100, cancellationToken);
            if (name is "all" or "batch" or "memory")
            {
                await BatchAsync(cloud, name == "batch" ? Math.Min(_settings.Vms, 50_000) : _settings.Vms, cancellationToken);
            }
            if (name is "all" or "single")
            {
                await SingleAsync(cloud, cancellationToken);
            }
            if (name is "all" or "latency")
            {
                await LatencyAsync(cloud, cancellationToken);
            }
            if (name is "all" or "memory" or "capacity")
            {
                await MemoryAsync(cloud, cancellationToken);
            }
            if (name is "all" or "capacity")
            {
                await CapacityAsync(cloud, cancellationToken);
            }
            await CheckAsync(cloud, cancellationToken);
        }
        if (name is "all" or "packing")
        {
            // Nodes shaped like the trace (3.25 GB per vCPU on average): were they shaped
            // otherwise, one resource would run out first on every node and the other strand
            // whatever the scheduler did. The stranding measured is then the scheduler's own.
            await using var cloud = await NewCloudAsync("packing", 2_000, vcpus: 64, cpuRatio: 1.0, memoryMb: 208 * 1024, policy: "pack", maxFeasible: 0, cancellationToken);
            await PackingAsync(cloud, cancellationToken);
            await CheckAsync(cloud, cancellationToken);
        }
        return _violations == 0 ? 0 : 1;
    }

    private async Task<Cloud> NewCloudAsync(string name, int nodes, long vcpus, double cpuRatio, long memoryMb, string policy, int maxFeasible, CancellationToken cancellationToken)
    {
        var connectionString = await CreateDatabaseAsync($"bench_{name}", cancellationToken);
        await DatabaseMigrator.MigrateAsync(connectionString, cancellationToken);
        var replicas = new[]
        {
            await ControllerReplica.StartAsync(connectionString, policy, maxFeasible),
            await ControllerReplica.StartAsync(connectionString, policy, maxFeasible),
        };
        HollowNodes.Certificates(nodes);
        var started = Stopwatch.GetTimestamp();
        await HollowNodes.RegisterAsync(replicas[0].NodeUrl, nodes, vcpus, cpuRatio, memoryMb, cancellationToken);
        Metric($"{name}_hollow_nodes", nodes, "nodes");
        Metric($"{name}_node_registrations_per_s", nodes / Stopwatch.GetElapsedTime(started).TotalSeconds, "registrations/s");
        _profile?.Report("registration", nodes);
        var dataSource = NpgsqlDataSource.Create(connectionString);
        if (_profile is not null)
        {
            await StatementProfile.EnableAsync(dataSource, cancellationToken);
        }
        return new Cloud(dataSource, replicas, vcpus * cpuRatio, memoryMb);
    }

    /// <summary>With <c>--profile</c>: the spans, then PostgreSQL's statements, since the last report.</summary>
    private async Task ProfileAsync(Cloud cloud, string prefix, long vms, CancellationToken cancellationToken)
    {
        if (_profile is null)
        {
            return;
        }
        _profile.Report(prefix, vms);
        await StatementProfile.ReportAsync(cloud.DataSource, prefix, vms, cancellationToken);
    }

    /// <summary>
    /// Batches of 500 VMs, one pass and one transaction each, until <paramref name="total"/> VMs
    /// are placed: first one batch at a time on one replica, then (when there is room for them)
    /// two streams of batches at once, one on each replica, as two autoscaling groups growing
    /// together would arrive.
    /// </summary>
    private async Task BatchAsync(Cloud cloud, int total, CancellationToken cancellationToken)
    {
        // Batches on both replicas first, not counted, as the other benchmarks warm up: from
        // cold, the first stream's CPU per VM was three times the second's, most of it the JIT
        // compiling what every later batch runs.
        var warmUp = await PlaceBatchesAsync(cloud, [0, 1], WarmUpSeconds * 1_000, cancellationToken);
        await ProfileAsync(cloud, "batch_warm_up", warmUp.Placed, cancellationToken);
        var sequential = await PlaceBatchesAsync(cloud, [0], (total - warmUp.Placed) / 2, cancellationToken);
        Metric("batch_vms_placed", sequential.Placed, "VMs");
        Metric("batch_vms_per_s", sequential.Placed / sequential.Seconds, "VMs/s");
        Report("batch", sequential.Cpu);
        await ProfileAsync(cloud, "batch", sequential.Placed, cancellationToken);
        var concurrent = await PlaceBatchesAsync(cloud, [0, 1], total - warmUp.Placed - sequential.Placed, cancellationToken);
        Metric("batch_2_streams_vms_placed", concurrent.Placed, "VMs");
        Metric("batch_2_streams_vms_per_s", concurrent.Placed / concurrent.Seconds, "VMs/s");
        Report("batch_2_streams", concurrent.Cpu);
        await ProfileAsync(cloud, "batch_2_streams", concurrent.Placed, cancellationToken);
    }

    /// <summary>One stream of batches per replica named, each placing its share of <paramref name="total"/>.</summary>
    private async Task<(int Placed, double Seconds, CpuUse Cpu)> PlaceBatchesAsync(Cloud cloud, int[] replicas, int total, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var cpu = CpuSplit.Start(ClusterDirectory);
        var placed = await Task.WhenAll(replicas.Select(async (replica, stream) =>
        {
            var trace = new VmTrace(1 + stream + (replicas.Length * 10));
            var scheduler = cloud.Replicas[replica].Scheduler;
            var share = total / replicas.Length;
            var done = 0;
            while (done < share)
            {
                var result = await TracePlacement.PlaceBatchAsync(scheduler, trace, Math.Min(BatchSize, share - done), cancellationToken);
                if (result.Placed.Count == 0)
                {
                    break;
                }
                done += result.Placed.Count;
                lock (cloud.Live)
                {
                    cloud.Live.AddRange(result.Placed.Select(p => p.Item.ConsumerId));
                }
            }
            return done;
        }));
        return (placed.Sum(), Stopwatch.GetElapsedTime(started).TotalSeconds, cpu.Stop(placed.Sum()));
    }

    /// <summary>One VM per request, from many callers at once, spread over two controller replicas.</summary>
    private async Task SingleAsync(Cloud cloud, CancellationToken cancellationToken)
    {
        var trace = new VmTrace(2);
        // As many VMs first, not counted, for the reason the latency benchmark warms up: the
        // connections 32 callers need are opened and their statements prepared, the code compiled.
        await PlaceConcurrentlyAsync(cloud, trace, WarmUpSeconds * 1_000, cancellationToken);
        await ProfileAsync(cloud, "single_warm_up", WarmUpSeconds * 1_000, cancellationToken);
        var started = Stopwatch.GetTimestamp();
        var placed = await PlaceConcurrentlyAsync(cloud, trace, Math.Max(2_000, _settings.Seconds * 1_000), cancellationToken);
        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        Metric("single_vms_placed", placed, "VMs");
        Metric("single_vms_per_s_2_replicas", placed / elapsed, "VMs/s");
        await ProfileAsync(cloud, "single", placed, cancellationToken);
        Metric("single_claim_attempts_per_vm", await SimulatorSql.ScalarAsync(cloud.DataSource,
            "SELECT round(avg(attempts) * 1000) FROM placement_decisions WHERE kind = 'place'", cancellationToken) / 1000.0, "attempts");
    }

    /// <summary><paramref name="total"/> one-VM requests from 32 callers at once, alternating between the two replicas; how many were placed.</summary>
    private static async Task<int> PlaceConcurrentlyAsync(Cloud cloud, VmTrace trace, int total, CancellationToken cancellationToken)
    {
        var sizes = Enumerable.Range(0, total).Select(_ => trace.Next()).ToArray();
        var next = -1;
        var placed = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, 32), new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = cancellationToken }, async (worker, ct) =>
        {
            var scheduler = cloud.Replicas[worker % 2].Scheduler;
            int i;
            while ((i = Interlocked.Increment(ref next)) < total)
            {
                if (await PlaceOneAsync(cloud, scheduler, sizes[i], ct))
                {
                    Interlocked.Increment(ref placed);
                }
            }
        });
        return placed;
    }

    private static async Task<bool> PlaceOneAsync(Cloud cloud, Controller.Scheduling.Scheduler scheduler, VmSize size, CancellationToken cancellationToken)
    {
        if (await TracePlacement.PlaceOneAsync(scheduler, size, cancellationToken) is not { } vm)
        {
            return false;
        }
        lock (cloud.Live)
        {
            cloud.Live.Add(vm);
        }
        return true;
    }

    /// <summary>
    /// One request at a time first (the cost of a request with no queue), then an open loop:
    /// requests start on a fixed schedule, whatever the ones before took, so queueing counts.
    /// </summary>
    private async Task LatencyAsync(Cloud cloud, CancellationToken cancellationToken)
    {
        const int Rate = 500;
        var trace = new VmTrace(3);
        await SimulatorSql.RecycleWalFilesAsync(cloud.DataSource, cancellationToken);
        // The load for a few seconds first, not counted: the connections it needs are opened and
        // their statements prepared, and the code it runs is compiled, as in a controller that has
        // been serving for a while.
        await OfferAsync(cloud, trace, Rate, WarmUpSeconds * Rate, cancellationToken);
        await ProfileAsync(cloud, "latency_warm_up", WarmUpSeconds * Rate, cancellationToken);

        var serial = new double[500];
        for (var i = 0; i < serial.Length; i++)
        {
            var begun = Stopwatch.GetTimestamp();
            await PlaceOneAsync(cloud, cloud.Replicas[0].Scheduler, trace.Next(), cancellationToken);
            serial[i] = Stopwatch.GetElapsedTime(begun).TotalMilliseconds;
        }
        Array.Sort(serial);
        Metric("latency_serial_p50", serial[serial.Length / 2], "ms");
        Metric("latency_serial_p99", serial[(int)(serial.Length * 0.99)], "ms");
        await ProfileAsync(cloud, "latency_serial", serial.Length, cancellationToken);

        const string Maintenance = "SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_user_tables";
        var maintenanceBefore = await SimulatorSql.ScalarAsync(cloud.DataSource, Maintenance, cancellationToken);
        const string WalPosition = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint";
        var walBefore = await SimulatorSql.ScalarAsync(cloud.DataSource, WalPosition, cancellationToken);
        var cpu = CpuSplit.Start(ClusterDirectory);
        var (latencies, lags, elapsed, errors) = await OfferAsync(cloud, trace, Rate, Rate * _settings.Seconds, cancellationToken);
        var used = cpu.Stop(latencies.Length);
        var walBytes = await SimulatorSql.ScalarAsync(cloud.DataSource, WalPosition, cancellationToken) - walBefore;
        // Stats reach the view with a delay of up to a second (stats_fetch_consistency aside).
        await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
        Metric("latency_autovacuum_runs", await SimulatorSql.ScalarAsync(cloud.DataSource, Maintenance, cancellationToken) - maintenanceBefore, "runs");
        var count = latencies.Length;
        Metric("latency_offered_rate", Rate, "requests/s");
        Metric("latency_achieved_rate", count / elapsed, "requests/s");
        Metric("latency_p50", latencies[count / 2], "ms");
        Metric("latency_p99", latencies[(int)(count * 0.99)], "ms");
        Metric("latency_errors", errors, "requests");
        Metric("latency_wal_per_request", walBytes / 1024.0 / count, "KiB");
        Metric("latency_issue_lag_p50", lags[count / 2], "ms");
        Metric("latency_issue_lag_p99", lags[(int)(count * 0.99)], "ms");
        Report("latency", used);
        await ProfileAsync(cloud, "latency", count, cancellationToken);
    }

    /// <summary><paramref name="count"/> one-VM requests to replica 0 at <paramref name="rate"/> per second, in an <see cref="OpenLoop"/>.</summary>
    private static Task<OpenLoopResult> OfferAsync(Cloud cloud, VmTrace trace, int rate, int count, CancellationToken cancellationToken)
    {
        var scheduler = cloud.Replicas[0].Scheduler;
        var sizes = Enumerable.Range(0, count).Select(_ => trace.Next()).ToArray();
        return OpenLoop.RunAsync(rate, count, async index =>
        {
            try
            {
                await PlaceOneAsync(cloud, scheduler, sizes[index], cancellationToken);
                return true;
            }
            catch (NpgsqlException)
            {
                // An overloaded run: counted, and its latency is the time it took to fail.
                return false;
            }
        }, cancellationToken);
    }

    /// <summary>Tops the cloud up to the VM count asked, then reads this process's memory with both views brought up to date.</summary>
    private async Task MemoryAsync(Cloud cloud, CancellationToken cancellationToken)
    {
        var live = await SimulatorSql.ScalarAsync(cloud.DataSource, "SELECT count(*) FROM vms WHERE state = 'RUNNING'", cancellationToken);
        if (live < _settings.Vms)
        {
            await BatchAsync(cloud, _settings.Vms - (int)live, cancellationToken);
        }
        foreach (var replica in cloud.Replicas)
        {
            replica.Scheduler.InvalidateAll();
            await replica.Scheduler.NodesAsync(cancellationToken);
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        Metric("memory_vms", await SimulatorSql.ScalarAsync(cloud.DataSource, "SELECT count(*) FROM vms WHERE state = 'RUNNING'", cancellationToken), "VMs");
        Metric("memory_nodes", cloud.Replicas[0].Scheduler is { } s ? (await s.NodesAsync(cancellationToken)).Count : 0, "nodes");
        Metric("process_rss_2_replicas", process.WorkingSet64 / (1024.0 * 1024.0), "MB");
        Metric("managed_heap_2_replicas", GC.GetTotalMemory(false) / (1024.0 * 1024.0), "MB");
    }

    /// <summary>
    /// Capacity planning over the full cloud: the plain report, then 100 nodes drained (their
    /// VMs placed again through the scheduler's filters on a copy of the view), three times each.
    /// </summary>
    private static async Task CapacityAsync(Cloud cloud, CancellationToken cancellationToken)
    {
        var operatorCaller = new Controller.Auth.Caller("bench", "admin", TokenRoles.Operator);
        var nodes = await cloud.Replicas[0].Scheduler.NodesAsync(cancellationToken);
        var drained = new PlanCapacityRequest();
        drained.DrainNodes.Add(nodes.Take(100).Select(n => n.Name));
        foreach (var (label, request) in new[] { ("capacity_report", new PlanCapacityRequest()), ("capacity_drain_100_nodes", drained) })
        {
            var times = new List<double>();
            CapacityPlan? plan = null;
            for (var run = 0; run < 3; run++)
            {
                var begun = Stopwatch.GetTimestamp();
                plan = await cloud.Replicas[0].Capacity.PlanAsync(operatorCaller, request, cancellationToken);
                times.Add(Stopwatch.GetElapsedTime(begun).TotalMilliseconds);
            }
            Metric($"{label}_ms", times.Order().ElementAt(1), "ms");
            Metric($"{label}_displaced", plan!.Displaced, "VMs");
            Metric($"{label}_placed_again", plan.PlacedAgain, "VMs");
        }
    }

    /// <summary>
    /// The pack policy on a mixed trace that arrives and departs: 2,000 nodes of 64 vCPUs and
    /// 208 GB, VMs arriving in batches of 100 in trace order, one in five departing at random.
    /// </summary>
    private static async Task PackingAsync(Cloud cloud, CancellationToken cancellationToken)
    {
        var trace = new VmTrace(4);
        var scheduler = cloud.Replicas[0].Scheduler;
        var live = new List<Guid>();
        var arrivals = 0;
        var started = Stopwatch.GetTimestamp();
        for (var round = 0; round < 300; round++)
        {
            var result = await TracePlacement.PlaceBatchAsync(scheduler, trace, 100, cancellationToken);
            arrivals += result.Placed.Count;
            live.AddRange(result.Placed.Select(p => p.Item.ConsumerId));
            var departing = new List<Guid>();
            for (var d = 0; d < 20 && live.Count > 0; d++)
            {
                var k = trace.Random.Next(live.Count);
                departing.Add(live[k]);
                live[k] = live[^1];
                live.RemoveAt(live.Count - 1);
            }
            await SimulatorSql.DepartAsync(cloud.DataSource, scheduler, departing, cancellationToken);
        }
        Metric("packing_arrivals", arrivals, "VMs");
        Metric("packing_live_vms", live.Count, "VMs");
        Metric("packing_seconds", Stopwatch.GetElapsedTime(started).TotalSeconds, "s");

        await using var command = cloud.DataSource.CreateCommand("""
            SELECT count(*) FILTER (WHERE vcpu > 0 OR mem > 0),
                   coalesce(sum(vcpu), 0)::bigint, coalesce(sum(mem), 0)::bigint,
                   coalesce(sum(CASE WHEN (vcpu > 0 OR mem > 0) AND $2 - mem < $4 THEN $1 - vcpu ELSE 0 END), 0)::bigint,
                   coalesce(sum(CASE WHEN (vcpu > 0 OR mem > 0) AND $1 - vcpu < $3 THEN $2 - mem ELSE 0 END), 0)::bigint
              FROM (SELECT n.id,
                           coalesce(sum(a.used) FILTER (WHERE a.resource_class = 'VCPU'), 0) AS vcpu,
                           coalesce(sum(a.used) FILTER (WHERE a.resource_class = 'MEMORY_MB'), 0) AS mem
                      FROM nodes AS n LEFT JOIN allocations AS a ON a.node_id = n.id
                     GROUP BY n.id) AS per_node
            """);
        var smallest = VmTrace.Sizes[0];
        command.Parameters.Add(new NpgsqlParameter { Value = (long)cloud.NodeVcpus });
        command.Parameters.Add(new NpgsqlParameter { Value = cloud.NodeMemoryMb });
        command.Parameters.Add(new NpgsqlParameter { Value = (long)smallest.Vcpus });
        command.Parameters.Add(new NpgsqlParameter { Value = smallest.MemoryMb });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var used = reader.GetInt64(0);
        var (vcpus, memory, strandedCpu, strandedMemory) = (reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4));
        // The lower bound: the most nodes any one resource needs, were VMs divisible.
        var bound = Math.Max(Math.Ceiling(vcpus / cloud.NodeVcpus), Math.Ceiling((double)memory / cloud.NodeMemoryMb));
        Metric("packing_nodes_used", used, "nodes");
        Metric("packing_lower_bound", bound, "nodes");
        Metric("packing_ratio", used / bound, "x");
        Metric("packing_stranded_cpu", 100.0 * strandedCpu / (used * cloud.NodeVcpus), "%");
        Metric("packing_stranded_memory", 100.0 * strandedMemory / (used * cloud.NodeMemoryMb), "%");
    }

    private async Task CheckAsync(Cloud cloud, CancellationToken cancellationToken)
    {
        var violations = await LedgerInvariants.CheckAsync(cloud.DataSource, cancellationToken);
        foreach (var violation in violations.Take(10))
        {
            Console.Error.WriteLine(violation);
        }
        _violations += violations.Count;
        Metric("invariant_violations", violations.Count, "violations");
    }

    private async Task<string> CreateDatabaseAsync(string name, CancellationToken cancellationToken)
    {
        var admin = new NpgsqlConnectionStringBuilder(_postgres.ConnectionString) { Database = "postgres", Pooling = false };
        await using (var connection = new NpgsqlConnection(admin.ConnectionString))
        {
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        return new NpgsqlConnectionStringBuilder(_postgres.ConnectionString) { Database = name, MaxPoolSize = 100 }.ConnectionString;
    }

    private async Task<string> SettingAsync(string setting, CancellationToken cancellationToken)
    {
        await using var dataSource = NpgsqlDataSource.Create(_postgres.ConnectionString);
        await using var command = dataSource.CreateCommand($"SHOW {setting}");
        return (string)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>The cluster's own folder, where its postmaster.pid is.</summary>
    private string ClusterDirectory => Path.Combine(_postgres.DataDirectory, "pgdata");

    /// <summary>Where a phase's CPU went, per VM, what this process allocated meanwhile and how long its collections paused it.</summary>
    private static void Report(string phase, CpuUse cpu)
    {
        Metric($"{phase}_process_cpu_per_vm", cpu.ProcessMs, "ms");
        Metric($"{phase}_postgres_cpu_per_vm", cpu.PostgresMs, "ms");
        Metric($"{phase}_allocated_per_vm", cpu.AllocatedKib, "KiB");
        Metric($"{phase}_gc_collections", cpu.Collections, "collections");
        Metric($"{phase}_gc_pause", cpu.GcPauseMs, "ms");
    }

    private static void Metric(string name, double value, string unit)
        => Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: {value:0.###} {unit}").TrimEnd());

    private static void Metric(string name, string value, string unit)
        => Console.WriteLine($"{name}: {value} {unit}".TrimEnd());

    public async ValueTask DisposeAsync()
    {
        _profile?.Dispose();
        await _postgres.DisposeAsync();
    }

    /// <summary>One simulated cloud: its database and its two controller replicas.</summary>
    private sealed class Cloud(NpgsqlDataSource dataSource, ControllerReplica[] replicas, double nodeVcpus, long nodeMemoryMb) : IAsyncDisposable
    {
        public NpgsqlDataSource DataSource { get; } = dataSource;
        public ControllerReplica[] Replicas { get; } = replicas;
        public double NodeVcpus { get; } = nodeVcpus;
        public long NodeMemoryMb { get; } = nodeMemoryMb;
        public List<Guid> Live { get; } = [];

        public async ValueTask DisposeAsync()
        {
            foreach (var replica in Replicas)
            {
                await replica.DisposeAsync();
            }
            await DataSource.DisposeAsync();
        }
    }
}
