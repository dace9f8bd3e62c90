using Cloud.Controller.Data;
using Npgsql;

namespace Cloud.Controller.Scheduling;

/// <summary>
/// Listens on <see cref="LedgerSql.NodesChangedChannel"/> and expires the scheduler's view at
/// each notification, so that a node another replica saw go down, register, drain or change
/// aggregates is checked before this replica's next decision rather than at its next periodic
/// check (docs/design/006-scheduling.md, "Keeping the view current").
/// </summary>
/// <remarks>
/// One connection of the ledger's pool stays checked out for the listener's life. It leaves the
/// channel before going back (the pool does not reset connections). When the connection breaks,
/// the listener reconnects after a pause and expires the view once, for what it may have missed.
/// </remarks>
internal sealed partial class NodeChangeListener(
    NpgsqlDataSource dataSource,
    Scheduler scheduler,
    TimeProvider time,
    ILogger<NodeChangeListener> logger) : BackgroundService
{
    /// <summary>How long the listener waits before connecting again after losing its connection.</summary>
    internal static readonly TimeSpan Reconnect = TimeSpan.FromSeconds(2);

    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _received;

    /// <summary>Notifications received, for tests and diagnostics.</summary>
    internal long Received => Interlocked.Read(ref _received);

    /// <summary>Completes once the listener first listens.</summary>
    internal Task Listening => _listening.Task;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ListenAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
            {
                Log.Lost(logger, Reconnect, e);
                await Task.Delay(Reconnect, time, stoppingToken);
            }
        }
    }

    private async Task ListenAsync(CancellationToken stoppingToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(stoppingToken);
        connection.Notification += (_, _) =>
        {
            // Counted after the view is expired, so that whoever sees the count sees the expiry.
            scheduler.InvalidateAll();
            Interlocked.Increment(ref _received);
        };
        await ExecuteAsync(connection, $"LISTEN {LedgerSql.NodesChangedChannel}", stoppingToken);
        _listening.TrySetResult();
        try
        {
            // Whatever changed while nobody listened (at start, or after a broken connection).
            scheduler.InvalidateAll();
            while (true)
            {
                await connection.WaitAsync(stoppingToken);
            }
        }
        finally
        {
            try
            {
                await ExecuteAsync(connection, "UNLISTEN *", CancellationToken.None);
            }
            catch (Exception e) when (e is NpgsqlException or IOException or InvalidOperationException)
            {
                // A broken connection is not pooled again, so it carries no LISTEN to anyone.
            }
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 6006, Level = LogLevel.Warning, Message = "Lost the connection that listens for node changes; listening again in {Pause}, and checking every node meanwhile at the usual interval")]
        public static partial void Lost(ILogger logger, TimeSpan pause, Exception exception);
    }
}
