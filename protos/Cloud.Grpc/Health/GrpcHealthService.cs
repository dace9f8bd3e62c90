using System.Threading.Channels;
using Cloud.Grpc.Health.V1;
using ServingStatus = Cloud.Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cloud.Grpc;

/// <summary>
/// The statuses the grpc.health.v1.Health service reports. The server as a whole ("") starts
/// SERVING; other services are unknown until <see cref="SetStatus"/> names them.
/// </summary>
public sealed class GrpcHealthService
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, ServingStatus> _statuses = new(StringComparer.Ordinal) { [""] = ServingStatus.Serving };
    private readonly Dictionary<string, List<Channel<ServingStatus>>> _watchers = new(StringComparer.Ordinal);

    /// <summary>Sets a service's status ("" for the whole server) and tells its watchers.</summary>
    public void SetStatus(string service, ServingStatus status)
    {
        ArgumentNullException.ThrowIfNull(service);
        lock (_lock)
        {
            _statuses[service] = status;
            Notify(service, status);
        }
    }

    /// <summary>Forgets a service: Check answers NOT_FOUND and watchers see SERVICE_UNKNOWN.</summary>
    public void ClearStatus(string service)
    {
        ArgumentNullException.ThrowIfNull(service);
        lock (_lock)
        {
            if (_statuses.Remove(service))
            {
                Notify(service, ServingStatus.ServiceUnknown);
            }
        }
    }

    /// <summary>The current status, or null for a service never set.</summary>
    public ServingStatus? GetStatus(string service)
    {
        lock (_lock)
        {
            return _statuses.TryGetValue(service, out var status) ? status : null;
        }
    }

    internal Task<HealthCheckResponse> CheckAsync(HealthCheckRequest request, ServerCallContext context)
    {
        var status = GetStatus(request.Service)
            ?? throw new RpcException(StatusCode.NotFound, $"Unknown service '{request.Service}'.");
        return Task.FromResult(new HealthCheckResponse { Status = status });
    }

    internal async Task WatchAsync(HealthCheckRequest request, IServerStreamWriter<HealthCheckResponse> stream, ServerCallContext context)
    {
        // Only the latest status matters to a watcher, so a slow one just skips stale updates.
        var updates = Channel.CreateBounded<ServingStatus>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropOldest });
        ServingStatus current;
        lock (_lock)
        {
            current = _statuses.TryGetValue(request.Service, out var status) ? status : ServingStatus.ServiceUnknown;
            if (!_watchers.TryGetValue(request.Service, out var list))
            {
                _watchers[request.Service] = list = [];
            }
            list.Add(updates);
        }
        try
        {
            await stream.WriteAsync(new HealthCheckResponse { Status = current }, context.CancellationToken).ConfigureAwait(false);
            await foreach (var next in updates.Reader.ReadAllAsync(context.CancellationToken).ConfigureAwait(false))
            {
                if (next != current)
                {
                    current = next;
                    await stream.WriteAsync(new HealthCheckResponse { Status = current }, context.CancellationToken).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            lock (_lock)
            {
                var list = _watchers[request.Service];
                list.Remove(updates);
                if (list.Count == 0)
                {
                    _watchers.Remove(request.Service);
                }
            }
        }
    }

    private void Notify(string service, ServingStatus status)
    {
        if (_watchers.TryGetValue(service, out var list))
        {
            foreach (var watcher in list)
            {
                watcher.Writer.TryWrite(status);
            }
        }
    }
}
