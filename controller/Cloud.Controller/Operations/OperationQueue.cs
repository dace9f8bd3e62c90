using System.Threading.Channels;

namespace Cloud.Controller.Operations;

/// <summary>Operation ids waiting for the runner. The database stays the truth; this is only the doorbell.</summary>
internal sealed class OperationQueue
{
    private readonly Channel<Guid> _channel = Channel.CreateUnbounded<Guid>(new UnboundedChannelOptions { SingleReader = false });

    public void Enqueue(Guid operationId) => _channel.Writer.TryWrite(operationId);

    public ChannelReader<Guid> Reader => _channel.Reader;
}
