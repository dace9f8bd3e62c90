using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Cloud.Contracts.Trust;
using Cloud.Controller.Data;
using Cloud.Controller.Trust;
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
/// clients (fixed at startup); a channel lives as long as its node's HTTP/2 connection is useful.
/// Every channel is mutual TLS: the controller presents its own certificate, and accepts only
/// the certificate of the node it means to call (cloud://node/NAME from the cloud CA), so an
/// address taken over by another machine, or by another node, gets no call. Every agent verb is idempotent
/// (VM ids are chosen by the controller), so transient failures are retried with jittered
/// backoff; a node that keeps failing trips its own circuit breaker without slowing calls to
/// the others.
/// </summary>
internal sealed class AgentConnections(ControllerCertificates certificates) : IDisposable
{
    private readonly ConcurrentDictionary<(string Node, string Address), Connection> _connections = new();

    /// <summary>Per-attempt deadline of an agent call.</summary>
    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(60);

    public AgentConnection For(NodeEntity node) => For(node.Name, node.Address);

    public AgentConnection For(string node, string address)
    {
        var connection = _connections.GetOrAdd((node, address), key => new Connection(
            GrpcChannel.ForAddress(key.Address, new GrpcChannelOptions { HttpHandler = MutualTls(key.Node) }), BuildPipeline()));
        return new AgentConnection(address, new NodeAgent.NodeAgentClient(connection.Channel), connection.Pipeline);
    }

    private SocketsHttpHandler MutualTls(string node) => new()
    {
        EnableMultipleHttp2Connections = true,
        // Connections are made again now and then, so that a renewed certificate (either side's) is used.
        PooledConnectionLifetime = TimeSpan.FromMinutes(30),
        SslOptions = new SslClientAuthenticationOptions
        {
            LocalCertificateSelectionCallback = (_, _, _, _, _) => certificates.Own,
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                certificate is X509Certificate2 presented && certificates.Verifies(presented) && CloudIdentity.NodeOf(presented) == node,
        },
    };

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

    /// <summary>
    /// Runs an agent call on behalf of an API caller who waits for the answer (a synchronous
    /// path, such as a console read), so the caller's deadline and cancellation reach the agent:
    /// each attempt's deadline is <paramref name="callerDeadline"/> or the per-attempt timeout,
    /// whichever comes first, and no retry starts once the caller's deadline has passed. Pass
    /// <see cref="ServerCallContext.Deadline"/> and <see cref="ServerCallContext.CancellationToken"/>
    /// from gRPC; REST has no deadline header, so it passes <see cref="DateTime.MaxValue"/> and the
    /// request's abort token, and gets the per-attempt timeout alone.
    /// </summary>
    /// <remarks>
    /// Explicit rather than grpc-dotnet's call-context propagation (Grpc.Net.ClientFactory's
    /// EnableCallContextPropagation): agents are reached by the address each node registered, one
    /// channel per address made at run time, not by named clients configured at startup; the
    /// propagation is ambient (it would apply to any agent call a request's code makes, including
    /// work the request only starts), and it knows nothing of this pipeline's retries, which must
    /// stop at the caller's deadline. A call that ends because the caller's deadline passed or the
    /// caller went away says nothing about the node, so it counts for neither retry nor breaker.
    /// </remarks>
    public async Task<T> CallAsync<T>(Func<NodeAgent.NodeAgentClient, CallOptions, AsyncUnaryCall<T>> call, DateTime callerDeadline, CancellationToken cancellationToken)
    {
        callerDeadline = callerDeadline.Kind == DateTimeKind.Local ? callerDeadline.ToUniversalTime() : callerDeadline;
        if (callerDeadline == DateTime.MaxValue)
        {
            return await CallAsync(call, cancellationToken);
        }
        var remaining = callerDeadline - DateTime.UtcNow;
        if (remaining <= TimeSpan.Zero)
        {
            throw CallerDeadlinePassed();
        }
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(remaining);
        try
        {
            return await pipeline.ExecuteAsync(async ct =>
            {
                var attemptDeadline = DateTime.UtcNow + AgentConnections.AttemptTimeout;
                try
                {
                    return await call(client, new CallOptions(deadline: attemptDeadline < callerDeadline ? attemptDeadline : callerDeadline, cancellationToken: ct));
                }
                catch (RpcException e) when (e.StatusCode is StatusCode.DeadlineExceeded or StatusCode.Cancelled && (ct.IsCancellationRequested || DateTime.UtcNow >= callerDeadline))
                {
                    // The caller's deadline or cancellation ended it, not the node.
                    throw new OperationCanceledException(e.Status.Detail, e, ct);
                }
            }, bounded.Token);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, "The caller cancelled the call."));
        }
        catch (OperationCanceledException)
        {
            throw CallerDeadlinePassed();
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

    private static RpcException CallerDeadlinePassed() => new(new Status(StatusCode.DeadlineExceeded, "The caller's deadline passed before the agent answered."));
}
