using System.Diagnostics;
using System.Globalization;
using System.Net;
using Cloud.Controller.Audit;
using Cloud.Controller.Data;
using Cloud.Controller.Data.Embedded;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cloud.Scheduler.Benchmarks;

/// <summary>
/// What the audit trail costs (docs/audit.md): a request's part (queuing its event), the
/// database's part per event (one INSERT per event, or per batch), and what the writer sustains
/// when calls outrun it. On a durable embedded PostgreSQL, like the controller's.
/// </summary>
internal static class AuditBench
{
    private const int SingleInserts = 2_000;
    private const int Batches = 200;
    private const int BatchSize = 500;
    private const int Producers = 4;
    private const int EventsPerProducer = 50_000;
    private const int Burst = 5_000;

    public static async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"cloud-audit-bench-{Environment.ProcessId}");
        await using var postgres = await EmbeddedPostgres.StartAsync(
            new EmbeddedPostgresOptions { DataDirectory = folder, Durable = true, DeleteOnStop = true },
            NullLogger.Instance, cancellationToken);
        await DatabaseMigrator.MigrateAsync(postgres.ConnectionString, cancellationToken);
        await using var dataSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(postgres.ConnectionString) { MaxAutoPrepare = 64, AutoPrepareMinUsages = 2 }.ConnectionString);
        var store = new AuditEventStore(dataSource);

        // The database's part: one event per INSERT (a quiet controller), then full batches (a busy one).
        var latencies = new double[SingleInserts];
        for (var i = 0; i < SingleInserts; i++)
        {
            var started = Stopwatch.GetTimestamp();
            await store.AppendAsync([NewEvent()], cancellationToken);
            latencies[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }
        Array.Sort(latencies);
        Metric("audit_insert_one_event_p50", latencies[SingleInserts / 2], "ms");
        Metric("audit_insert_one_event_p99", latencies[SingleInserts * 99 / 100], "ms");

        var batchClock = Stopwatch.StartNew();
        for (var b = 0; b < Batches; b++)
        {
            await store.AppendAsync([.. Enumerable.Range(0, BatchSize).Select(_ => NewEvent())], cancellationToken);
        }
        Metric("audit_insert_batched", Batches * BatchSize / batchClock.Elapsed.TotalSeconds, "events/s");

        // A request's part: queuing its event while the queue has room.
        var writer = new AuditWriter(store, Options.Create(new AuditOptions()), TimeProvider.System, NullLogger<AuditWriter>.Instance);
        await writer.StartAsync(cancellationToken);
        var burst = Enumerable.Range(0, Burst).Select(_ => NewEvent()).ToArray();
        var enqueue = Stopwatch.StartNew();
        foreach (var auditEvent in burst)
        {
            await writer.RecordAsync(auditEvent);
        }
        Metric("audit_record_per_call", enqueue.Elapsed.TotalNanoseconds / Burst / 1000, "us");

        // Calls that outrun the writer: producers wait for room (backpressure); the rate is the writer's.
        var sustained = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Producers).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < EventsPerProducer; i++)
            {
                await writer.RecordAsync(NewEvent());
            }
        }, cancellationToken)));
        await writer.StopAsync(cancellationToken);
        Metric("audit_writer_sustained", (Producers * EventsPerProducer + Burst) / sustained.Elapsed.TotalSeconds, "events/s");

        await using var count = dataSource.CreateCommand("SELECT count(*) FROM audit_events");
        var stored = (long)(await count.ExecuteScalarAsync(cancellationToken))!;
        var expected = SingleInserts + (Batches * BatchSize) + Burst + (Producers * EventsPerProducer);
        Metric("audit_events_stored", stored.ToString(CultureInfo.InvariantCulture), $"of {expected}");
        return stored == expected ? 0 : 1;
    }

    private static AuditEventEntity NewEvent()
    {
        var now = DateTimeOffset.UtcNow;
        return new AuditEventEntity
        {
            Id = Guid.CreateVersion7(now),
            Time = now,
            Actor = "token:" + Guid.NewGuid(),
            ActorName = "bench-token",
            Role = "member",
            TenantId = "bench-tenant",
            Action = "POST /v1/vms/{id}/snapshots",
            TargetId = Guid.NewGuid().ToString(),
            SourceAddress = IPAddress.Loopback,
            Status = 202,
            TraceId = ActivityTraceId.CreateRandom().ToHexString(),
        };
    }

    private static void Metric(string name, double value, string unit)
        => Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: {value:0.###} {unit}").TrimEnd());

    private static void Metric(string name, string value, string unit)
        => Console.WriteLine($"{name}: {value} {unit}".TrimEnd());
}
