using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Hypervisor;

/// <summary>
/// Fans VM state changes out to every watcher. A slow watcher loses its oldest events rather
/// than holding up the backend; it recovers the truth from the next ListVms.
/// </summary>
public sealed class EventHub
{
    private readonly Lock _gate = new();
    private readonly List<Channel<VmEvent>> _watchers = [];

    public void Publish(VmEvent vmEvent)
    {
        lock (_gate)
        {
            foreach (var watcher in _watchers)
            {
                watcher.Writer.TryWrite(vmEvent);
            }
        }
    }

    public async IAsyncEnumerable<VmEvent> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var channel = Channel.CreateBounded<VmEvent>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest });
        lock (_gate)
        {
            _watchers.Add(channel);
        }
        try
        {
            await foreach (var vmEvent in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return vmEvent;
            }
        }
        finally
        {
            lock (_gate)
            {
                _watchers.Remove(channel);
            }
        }
    }
}
