using Cloud.Controller.Data;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cloud.Controller.Audit;

/// <summary>
/// Deletes audit events older than <see cref="AuditOptions.Retention"/>, every
/// <see cref="AuditOptions.RetentionInterval"/>, in batches of <see cref="AuditOptions.RetentionBatchSize"/>
/// so that no statement holds many rows at once. Safe on every replica at once: the batches skip
/// rows another replica is deleting.
/// </summary>
internal sealed partial class AuditRetention(
    AuditEventStore store,
    IOptions<AuditOptions> options,
    TimeProvider time,
    ILogger<AuditRetention> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var deleted = await PurgeOnceAsync(stoppingToken);
                if (deleted > 0)
                {
                    Log.Purged(logger, deleted, options.Value.Retention);
                }
            }
            catch (NpgsqlException e)
            {
                // The database is away; the next round tries again.
                Log.Failed(logger, e);
            }
            await Task.Delay(options.Value.RetentionInterval, time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>One round: deletes every event older than the retention, batch by batch; returns how many.</summary>
    public async Task<long> PurgeOnceAsync(CancellationToken cancellationToken)
    {
        var cutoff = time.GetUtcNow() - options.Value.Retention;
        var batchSize = options.Value.RetentionBatchSize;
        long total = 0;
        int deleted;
        do
        {
            deleted = await store.PurgeOlderThanAsync(cutoff, batchSize, cancellationToken);
            total += deleted;
        }
        while (deleted == batchSize);
        return total;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 9101, Level = LogLevel.Information, Message = "Deleted {Count} audit event(s) older than {Retention}")]
        public static partial void Purged(ILogger logger, long count, TimeSpan retention);

        [LoggerMessage(EventId = 9102, Level = LogLevel.Warning, Message = "Deleting old audit events failed")]
        public static partial void Failed(ILogger logger, Exception exception);
    }
}
