using System.Diagnostics;
using Cloud.Controller.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Operations;

/// <summary>Section "Operations".</summary>
public sealed class OperationOptions
{
    public const string SectionName = "Operations";

    /// <summary>Operations run at once by this replica. Default 16.</summary>
    public int Concurrency { get; set; } = 16;

    /// <summary>How long a replica owns an operation it started before another may take it over. Default 2 min.</summary>
    public TimeSpan Lease { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How often unfinished operations whose lease expired are looked for. Default 15 s.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(15);
}

/// <summary>
/// Runs persisted operations. Takes ids from the <see cref="OperationQueue"/>, leases the
/// operation in PostgreSQL (so that one replica runs it), and hands it to its handler. At start
/// and then periodically it re-queues unfinished operations whose lease ran out: those of a
/// controller that crashed mid-way. Handlers are written so that running a step twice is safe.
/// </summary>
internal sealed partial class OperationRunner(
    OperationQueue queue,
    IDbContextFactory<LedgerDbContext> contexts,
    IEnumerable<IOperationHandler> handlers,
    IOptions<OperationOptions> options,
    TimeProvider time,
    ILogger<OperationRunner> logger) : BackgroundService
{
    /// <summary>This replica's name in operations.owner.</summary>
    public string Owner { get; } = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid():N}";

    private readonly Dictionary<string, IOperationHandler> _handlers = handlers.ToDictionary(h => h.Kind);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, byte> _running = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var workers = Enumerable.Range(0, options.Value.Concurrency).Select(_ => WorkAsync(stoppingToken)).ToList();
        workers.Add(SweepAsync(stoppingToken));
        await Task.WhenAll(workers);
    }

    private async Task SweepAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SweepInterval, time);
        do
        {
            try
            {
                await using var db = await contexts.CreateDbContextAsync(stoppingToken);
                var now = time.GetUtcNow();
                var orphans = await db.Operations.AsNoTracking()
                    .Where(o => (o.State == OperationStates.Pending || o.State == OperationStates.Running)
                        && (o.LeaseExpiresAt == null || o.LeaseExpiresAt < now))
                    .OrderBy(o => o.CreatedAt)
                    .Select(o => o.Id)
                    .Take(1000)
                    .ToListAsync(stoppingToken);
                foreach (var id in orphans)
                {
                    queue.Enqueue(id);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.SweepFailed(logger, e);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private async Task WorkAsync(CancellationToken stoppingToken)
    {
        await foreach (var id in queue.Reader.ReadAllAsync(stoppingToken))
        {
            // The doorbell can ring twice for one operation (its request and a sweep); the lease
            // keeps other replicas out, this keeps a second worker of this replica out.
            if (!_running.TryAdd(id, 0))
            {
                continue;
            }
            try
            {
                await RunAsync(id, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The lease runs out and a sweep retries the operation; steps are idempotent.
                Log.OperationCrashed(logger, id, e);
            }
            finally
            {
                _running.TryRemove(id, out _);
            }
        }
    }

    private async Task RunAsync(Guid id, CancellationToken cancellationToken)
    {
        if (!await TryLeaseAsync(id, cancellationToken))
        {
            return;
        }
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var operation = await db.Operations.AsNoTracking().SingleAsync(o => o.Id == id, cancellationToken);
        if (!_handlers.TryGetValue(operation.Kind, out var handler))
        {
            await OperationUpdates.FailAsync(contexts, id, "UNIMPLEMENTED", $"No handler for operation kind {operation.Kind}.", time, cancellationToken);
            return;
        }
        Log.Running(logger, operation.Kind, id, operation.TargetId);
        // A child of the request that started the operation: one trace from the API call down.
        using var span = OperationTelemetry.Source.StartActivity("operation " + operation.Kind, ActivityKind.Internal, OperationTelemetry.ParentOf(operation.TraceParent));
        span?.SetTag("cloud.operation.id", id).SetTag("cloud.operation.kind", operation.Kind).SetTag("cloud.operation.target", operation.TargetId);
        var kind = new KeyValuePair<string, object?>("cloud.operation.kind", operation.Kind);
        OperationTelemetry.Running.Add(1, kind);
        var started = time.GetTimestamp();
        var outcome = "error";
        string? errorCode = null;
        try
        {
            await handler.RunAsync(operation, cancellationToken);
            if (OperationTelemetry.RunDuration.Enabled || span is not null)
            {
                // One primary-key read, only when someone listens: what the handler's own
                // transaction recorded (handlers finish operations in several ways).
                var finished = await db.Operations.AsNoTracking().Where(o => o.Id == id)
                    .Select(o => new { o.State, o.ErrorCode }).SingleAsync(cancellationToken);
                (outcome, errorCode) = finished.State switch
                {
                    OperationStates.Succeeded => ("succeeded", null),
                    OperationStates.Failed => ("failed", finished.ErrorCode),
                    _ => ("unfinished", null),
                };
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The replica is stopping: the lease runs out and a replica resumes the operation.
            outcome = "interrupted";
            throw;
        }
        catch (Exception e)
        {
            span?.SetStatus(ActivityStatusCode.Error, e.Message).SetTag("error.type", e.GetType().FullName);
            throw;
        }
        finally
        {
            OperationTelemetry.Running.Add(-1, kind);
            var tags = new TagList { kind, { "cloud.operation.outcome", outcome } };
            if (errorCode is not null)
            {
                tags.Add("error.type", errorCode);
            }
            OperationTelemetry.RunDuration.Record(time.GetElapsedTime(started).TotalSeconds, tags);
            span?.SetTag("cloud.operation.outcome", outcome);
            if (errorCode is not null)
            {
                span?.SetStatus(ActivityStatusCode.Error, errorCode).SetTag("error.type", errorCode);
            }
        }
    }

    /// <summary>Takes the operation unless another replica holds a live lease on it, or it is finished.</summary>
    private async Task<bool> TryLeaseAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var now = time.GetUtcNow();
        var until = now + options.Value.Lease;
        var taken = await db.Operations
            .Where(o => o.Id == id
                && (o.State == OperationStates.Pending || o.State == OperationStates.Running)
                && (o.Owner == null || o.Owner == Owner || o.LeaseExpiresAt == null || o.LeaseExpiresAt < now))
            .ExecuteUpdateAsync(s => s
                .SetProperty(o => o.Owner, Owner)
                .SetProperty(o => o.LeaseExpiresAt, until)
                // Another replica had it and stopped: every handler resumes where the rows say it
                // was (its steps are idempotent); one that undoes instead overwrites this.
                .SetProperty(o => o.Recovery, o => o.Owner != null && o.Owner != Owner ? OperationStates.Resumed : o.Recovery), cancellationToken);
        return taken == 1;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Running {Kind} operation {OperationId} on {TargetId}")]
        public static partial void Running(ILogger logger, string kind, Guid operationId, string targetId);

        [LoggerMessage(EventId = 2002, Level = LogLevel.Error, Message = "Operation {OperationId} stopped with an unexpected error; it will be retried when its lease expires")]
        public static partial void OperationCrashed(ILogger logger, Guid operationId, Exception exception);

        [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "Looking for abandoned operations failed")]
        public static partial void SweepFailed(ILogger logger, Exception exception);
    }
}

/// <summary>Runs one kind of operation. Every step must be safe to run again after a crash.</summary>
internal interface IOperationHandler
{
    string Kind { get; }

    Task RunAsync(OperationEntity operation, CancellationToken cancellationToken);
}
