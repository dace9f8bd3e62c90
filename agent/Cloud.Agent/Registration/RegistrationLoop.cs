using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Node.V1;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;

namespace Cloud.Agent.Registration;

/// <summary>
/// Registers the node with the controller, then heartbeats its VMs' actual state and usage.
/// A controller that forgets the node (answers known=false) gets a fresh registration; an
/// unreachable controller is retried with jittered backoff, while the guests keep running.
/// </summary>
internal sealed partial class RegistrationLoop(
    IHypervisor hypervisor,
    NodeRegistry.NodeRegistryClient registry,
    IOptions<AgentOptions> options,
    TimeProvider time,
    ILogger<RegistrationLoop> logger) : BackgroundService
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);

    private readonly ResiliencePipeline _retry = new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<RpcException>().Handle<HttpRequestException>(),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(200),
            MaxDelay = TimeSpan.FromSeconds(10),
            MaxRetryAttempts = int.MaxValue,
        })
        .Build();

    // The heartbeat session of the last registration, and the number of its last heartbeat.
    private string _session = "";
    private ulong _sequence;

    /// <summary>Set once registered; heartbeats carry it.</summary>
    public string? NodeId { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var interval = await _retry.ExecuteAsync(RegisterAsync, stoppingToken);
            try
            {
                await HeartbeatUntilForgottenAsync(interval, stoppingToken);
            }
            catch (Exception e) when (e is RpcException or HttpRequestException)
            {
                Log.HeartbeatFailed(logger, e.Message);
            }
        }
    }

    private async ValueTask<TimeSpan> RegisterAsync(CancellationToken cancellationToken)
    {
        var info = await hypervisor.GetNodeInfoAsync(cancellationToken);
        info.NodeName = options.Value.NodeName;
        var reply = await registry.RegisterAsync(
            new RegisterRequest { Node = info, AgentAddress = options.Value.EffectiveAdvertiseUrl },
            Options(cancellationToken));
        NodeId = reply.NodeId;
        _session = reply.HeartbeatSession;
        _sequence = 0;
        Log.Registered(logger, info.NodeName, reply.NodeId);
        return reply.HeartbeatIntervalSeconds > 0 ? TimeSpan.FromSeconds(reply.HeartbeatIntervalSeconds) : options.Value.HeartbeatInterval;
    }

    private async Task HeartbeatUntilForgottenAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval, time);
        do
        {
            // Numbered, so that one that arrives after a later one (it timed out here, and the
            // controller still had it) is known as old and settles nothing.
            var request = new HeartbeatRequest { NodeId = NodeId!, HeartbeatSession = _session, Sequence = ++_sequence };
            request.Vms.AddRange(await hypervisor.ListVmsAsync(cancellationToken));
            request.Inventories.AddRange((await hypervisor.GetNodeInfoAsync(cancellationToken)).Inventories);
            var reply = await registry.HeartbeatAsync(request, Options(cancellationToken));
            if (!reply.Known)
            {
                Log.Forgotten(logger, NodeId!);
                return;
            }
        }
        while (await timer.WaitForNextTickAsync(cancellationToken));
    }

    private CallOptions Options(CancellationToken cancellationToken)
        => new(deadline: time.GetUtcNow().UtcDateTime + CallTimeout, cancellationToken: cancellationToken);

    private static partial class Log
    {
        [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Registered node {NodeName} as {NodeId}")]
        public static partial void Registered(ILogger logger, string nodeName, string nodeId);

        [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "Controller no longer knows node {NodeId}; registering again")]
        public static partial void Forgotten(ILogger logger, string nodeId);

        [LoggerMessage(EventId = 1003, Level = LogLevel.Warning, Message = "Heartbeat failed: {Error}; registering again")]
        public static partial void HeartbeatFailed(ILogger logger, string error);
    }
}
