using Microsoft.Extensions.Options;
using Npgsql;

namespace Cloud.Controller.Scheduling;

/// <summary>
/// Deletes placement decisions older than <see cref="SchedulerOptions.DecisionRetention"/>,
/// every hour, in chunks so that no statement holds many rows at once. At thousands of
/// placements a second the table would otherwise grow without end. Safe on every replica at
/// once: a chunk another replica deleted is simply not found.
/// </summary>
internal sealed partial class DecisionJanitor(
    NpgsqlDataSource dataSource,
    IOptions<SchedulerOptions> options,
    TimeProvider time,
    ILogger<DecisionJanitor> logger) : BackgroundService
{
    private const int Chunk = 10_000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var deleted = await PruneAsync(stoppingToken);
                if (deleted > 0)
                {
                    Log.Pruned(logger, deleted, options.Value.DecisionRetention);
                }
            }
            catch (NpgsqlException e)
            {
                // The database is away; the next hour tries again.
                Log.Failed(logger, e);
            }
            await Task.Delay(TimeSpan.FromHours(1), time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>One pass: deletes every decision older than the retention; returns how many.</summary>
    public async Task<long> PruneAsync(CancellationToken cancellationToken)
    {
        var cutoff = time.GetUtcNow() - options.Value.DecisionRetention;
        long total = 0;
        int deleted;
        do
        {
            await using var command = dataSource.CreateCommand(
                "DELETE FROM placement_decisions WHERE id IN (SELECT id FROM placement_decisions WHERE created_at < $1 LIMIT $2)");
            command.Parameters.Add(new NpgsqlParameter { Value = cutoff });
            command.Parameters.Add(new NpgsqlParameter { Value = Chunk });
            deleted = await command.ExecuteNonQueryAsync(cancellationToken);
            total += deleted;
        }
        while (deleted == Chunk);
        return total;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 6002, Level = LogLevel.Information, Message = "Deleted {Count} placement decision(s) older than {Retention}")]
        public static partial void Pruned(ILogger logger, long count, TimeSpan retention);

        [LoggerMessage(EventId = 6003, Level = LogLevel.Warning, Message = "Deleting old placement decisions failed")]
        public static partial void Failed(ILogger logger, Exception exception);
    }
}
