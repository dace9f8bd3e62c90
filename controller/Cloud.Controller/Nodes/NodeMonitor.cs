using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Nodes;

/// <summary>Marks nodes DOWN when their heartbeats stop, so that the scheduler passes them over.</summary>
internal sealed partial class NodeMonitor(
    CapacityLedger ledger,
    Scheduler scheduler,
    IOptions<NodeOptions> options,
    TimeProvider time,
    ILogger<NodeMonitor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.HeartbeatInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                var down = await ledger.MarkStaleNodesDownAsync(options.Value.DownAfter, stoppingToken);
                if (down > 0)
                {
                    Log.NodesDown(logger, down, options.Value.DownAfter);
                    scheduler.InvalidateAll();
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.CheckFailed(logger, e);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "{Count} node(s) sent no heartbeat for {DownAfter} and are now DOWN")]
        public static partial void NodesDown(ILogger logger, int count, TimeSpan downAfter);

        [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Checking node heartbeats failed")]
        public static partial void CheckFailed(ILogger logger, Exception exception);
    }
}
