using System.Collections.Concurrent;
using Cloud.Contracts.Agent.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Cloud.Controller.Nodes;

/// <summary>
/// One gRPC channel and one resilience pipeline per agent. Agents come and go at run time, each
/// at its own address, so these are channels of our own rather than the client factory's named
/// clients (fixed at startup); a channel lives as long as its node's HTTP/2 connection is useful. Every agent verb is idempotent
/// (VM ids are chosen by the controller), so transient failures are retried with jittered
/// backoff; a node that keeps failing trips its own circuit breaker without slowing calls to
/// the others.
/// </summary>
internal sealed class AgentConnections : IDisposable
{
    private readonly ConcurrentDictionary<string, Connection> _connections = new(StringComparer.Ordinal);

    /// <summary>Per-attempt deadline of an agent call.</summary>
    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(60);

    public AgentConnection For(string address)
    {
        var connection = _connections.GetOrAdd(address, a => new Connection(GrpcChannel.ForAddress(a), BuildPipeline()));
        return new AgentConnection(address, new NodeAgent.NodeAgentClient(connection.Channel), connection.Pipeline);
    }

    private static ResiliencePipeline BuildPipeline() => new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<RpcException>(IsTransient).Handle<HttpRequestException>(),
            MaxRetryAttempts = 3,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(200),
        })
        .AddCircuitBreaker(new CircuitBreakerStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<RpcException>(IsTransient).Handle<HttpRequestException>(),
            FailureRatio = 0.5,
            MinimumThroughput = 5,
            SamplingDuration = TimeSpan.FromSeconds(30),
            BreakDuration = TimeSpan.FromSeconds(10),
        })
        .AddTimeout(AttemptTimeout)
        .Build();

    private static bool IsTransient(RpcException e) => e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.ResourceExhausted;

    public void Dispose()
    {
        foreach (var connection in _connections.Values)
        {
            connection.Channel.Dispose();
        }
    }

    private sealed record Connection(GrpcChannel Channel, ResiliencePipeline Pipeline);
}

/// <summary>An agent's client with its resilience pipeline.</summary>
internal sealed class AgentConnection(string address, NodeAgent.NodeAgentClient client, ResiliencePipeline pipeline)
{
    /// <summary>The address the node registered, as other agents reach it (a move's snapshots are pulled from there).</summary>
    public string Address => address;

    /// <summary>The bare client, for streaming calls, which are not retried.</summary>
    public NodeAgent.NodeAgentClient Client => client;

    /// <summary>Runs an agent call through retries, the node's breaker and a per-attempt deadline.</summary>
    public async Task<T> CallAsync<T>(Func<NodeAgent.NodeAgentClient, CallOptions, AsyncUnaryCall<T>> call, CancellationToken cancellationToken)
    {
        try
        {
            return await pipeline.ExecuteAsync(
                async ct => await call(client, new CallOptions(deadline: DateTime.UtcNow + AgentConnections.AttemptTimeout, cancellationToken: ct)),
                cancellationToken);
        }
        catch (BrokenCircuitException e)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"The node is failing; calls are paused: {e.Message}"));
        }
        catch (TimeoutRejectedException)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, "The agent did not answer in time."));
        }
    }
}
