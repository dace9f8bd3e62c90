using System.Threading.Channels;
using Cloud.Controller.Data;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Audit;

/// <summary>
/// Takes audit events from the requests and writes them to PostgreSQL in batches.
/// <para>
/// Why a queue and not an INSERT in each request: a request then pays for a channel write
/// (microseconds) instead of a database round trip, and under load one INSERT carries every
/// event that arrived meanwhile (up to <see cref="AuditOptions.WriteBatchSize"/>), so the trail
/// costs the database one statement per batch rather than one per call.
/// </para>
/// <para>
/// Why nothing is lost silently: the queue is bounded and a full queue makes the request wait
/// (backpressure) instead of dropping the event; a failed INSERT is retried with the same rows
/// (their ids make the retry idempotent) until it succeeds; a stopping controller writes what is
/// queued before it ends. An event that still cannot be queued (the database away for longer than
/// <see cref="AuditOptions.EnqueueTimeout"/>, or a call after the writer stopped) goes to the error
/// log in full. What a kill -9 takes is the events of the last moments not yet written, which the
/// writer keeps short by writing as soon as anything is queued.
/// </para>
/// </summary>
internal sealed partial class AuditWriter : BackgroundService
{
    private static readonly TimeSpan MaxRetryPause = TimeSpan.FromSeconds(30);

    private readonly Channel<AuditEventEntity> _queue;
    private readonly AuditEventStore _store;
    private readonly AuditOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<AuditWriter> _logger;

    public AuditWriter(AuditEventStore store, IOptions<AuditOptions> options, TimeProvider time, ILogger<AuditWriter> logger)
    {
        _store = store;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _queue = Channel.CreateBounded<AuditEventEntity>(new BoundedChannelOptions(_options.QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
        });
    }

    /// <summary>Events queued and not yet written.</summary>
    public int Pending => _queue.Reader.Count;

    /// <summary>
    /// Queues <paramref name="auditEvent"/>; waits while the queue is full. Never throws: an event
    /// that cannot be queued is logged in full as an error instead.
    /// </summary>
    public async ValueTask RecordAsync(AuditEventEntity auditEvent)
    {
        if (_queue.Writer.TryWrite(auditEvent))
        {
            return;
        }
        // Not the request's token: a client that hangs up must not take its event with it.
        using var timeout = new CancellationTokenSource(_options.EnqueueTimeout, _time);
        try
        {
            await _queue.Writer.WriteAsync(auditEvent, timeout.Token);
        }
        catch (OperationCanceledException)
        {
            LogUnrecorded(auditEvent, "the queue stayed full");
        }
        catch (ChannelClosedException)
        {
            LogUnrecorded(auditEvent, "the writer has stopped");
        }
    }

    /// <summary>Writes what is queued when the host stops, within the host's shutdown timeout.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete();
        if (ExecuteTask is { } running)
        {
            try
            {
                await running.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                Log.ShutdownLeftEvents(_logger, _queue.Reader.Count);
            }
        }
        await base.StopAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<AuditEventEntity>(_options.WriteBatchSize);
        try
        {
            // Ends when StopAsync completed the queue and everything in it was written.
            while (await _queue.Reader.WaitToReadAsync(stoppingToken))
            {
                while (batch.Count < _options.WriteBatchSize && _queue.Reader.TryRead(out var auditEvent))
                {
                    batch.Add(auditEvent);
                }
                await WriteUntilStoredAsync(batch, stoppingToken);
                batch.Clear();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The shutdown's time ran out: what is left goes to the log, one event a line.
            foreach (var auditEvent in batch)
            {
                LogUnrecorded(auditEvent, "the controller stopped before the database took it");
            }
            while (_queue.Reader.TryRead(out var left))
            {
                LogUnrecorded(left, "the controller stopped before the database took it");
            }
        }
    }

    private async Task WriteUntilStoredAsync(List<AuditEventEntity> batch, CancellationToken stoppingToken)
    {
        var pause = TimeSpan.FromMilliseconds(100);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await _store.AppendAsync(batch, stoppingToken);
                if (attempt > 1)
                {
                    Log.Recovered(_logger, batch.Count, attempt);
                }
                return;
            }
            catch (Npgsql.PostgresException e) when (e.SqlState.StartsWith("22", StringComparison.Ordinal) || e.SqlState.StartsWith("23", StringComparison.Ordinal))
            {
                // The rows themselves are refused (a data or constraint error): trying again would
                // block every later event behind them, so they go to the log instead.
                Log.BatchRefused(_logger, batch.Count, e);
                foreach (var auditEvent in batch)
                {
                    LogUnrecorded(auditEvent, "the database refused it");
                }
                return;
            }
            catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                Log.WriteFailed(_logger, batch.Count, pause, e);
                await Task.Delay(pause, _time, stoppingToken);
                pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, MaxRetryPause.Ticks));
            }
        }
    }

    private void LogUnrecorded(AuditEventEntity e, string why)
        => Log.Unrecorded(_logger, why, e.Id, e.Time, e.Actor, e.Role, e.TenantId, e.Action, e.TargetId, e.SourceAddress?.ToString(), e.Status, e.GrpcStatus, e.TraceId);

    private static partial class Log
    {
        [LoggerMessage(EventId = 9001, Level = LogLevel.Warning, Message = "Writing {Count} audit event(s) failed; trying again in {Pause}")]
        public static partial void WriteFailed(ILogger logger, int count, TimeSpan pause, Exception exception);

        [LoggerMessage(EventId = 9002, Level = LogLevel.Information, Message = "Wrote {Count} audit event(s) at attempt {Attempt}")]
        public static partial void Recovered(ILogger logger, int count, int attempt);

        [LoggerMessage(EventId = 9003, Level = LogLevel.Error, Message = "Audit event not stored ({Why}): {EventId} {Time} actor={Actor} role={Role} tenant={TenantId} action={Action} target={TargetId} source={SourceAddress} status={Status} grpc={GrpcStatus} trace={TraceId}")]
        public static partial void Unrecorded(ILogger logger, string why, Guid eventId, DateTimeOffset time, string actor, string? role, string? tenantId,
            string action, string? targetId, string? sourceAddress, int status, int? grpcStatus, string? traceId);

        [LoggerMessage(EventId = 9004, Level = LogLevel.Error, Message = "The controller stopped with {Count} audit event(s) not yet written; each is logged")]
        public static partial void ShutdownLeftEvents(ILogger logger, int count);

        [LoggerMessage(EventId = 9005, Level = LogLevel.Error, Message = "The database refused a batch of {Count} audit event(s); each is logged")]
        public static partial void BatchRefused(ILogger logger, int count, Exception exception);
    }
}
