using System.Collections.Concurrent;
using System.Net;
using System.Runtime.CompilerServices;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Agent.Rpc;

/// <summary>
/// Calls this agent makes to other nodes' agents, at the controller's word: the source of a VM
/// arriving here (its snapshots), or the node whose store holds an image wanted here. The
/// controller names them by the address they registered; only a literal IP address and port are
/// taken, so a request cannot point the agent at a name of its choosing.
/// </summary>
internal sealed class PeerAgents(Identity.NodeIdentity identity) : IDisposable
{
    private static readonly TimeSpan TransferDeadline = TimeSpan.FromHours(2);
    private readonly ConcurrentDictionary<string, GrpcChannel> _channels = new(StringComparer.Ordinal);

    public async Task<IReadOnlyList<Snapshot>> ListSnapshotsAsync(string address, string vmId, CancellationToken cancellationToken)
    {
        var response = await Client(address).ListSnapshotsAsync(new VmRef { VmId = vmId }, new CallOptions(deadline: DateTime.UtcNow.AddMinutes(1), cancellationToken: cancellationToken));
        return response.Snapshots;
    }

    public async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadSnapshotFileAsync(string address, string vmId, string snapshotId, string name,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var call = Client(address).ReadSnapshotFile(new ReadSnapshotFileRequest { VmId = vmId, SnapshotId = snapshotId, Name = name },
            new CallOptions(deadline: DateTime.UtcNow + TransferDeadline, cancellationToken: cancellationToken));
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            yield return call.ResponseStream.Current.Data.Memory;
        }
    }

    public async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadImageAsync(string address, string imageId, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var call = Client(address).ReadImage(new ReadStoredImageRequest { ImageId = imageId },
            new CallOptions(deadline: DateTime.UtcNow + TransferDeadline, cancellationToken: cancellationToken));
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            yield return call.ResponseStream.Current.Data.Memory;
        }
    }

    /// <summary>https://ADDRESS:PORT (or http) with a literal IP address; anything else is refused as InvalidArgument.</summary>
    public static string Validate(string address, string field)
    {
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.IsDefaultPort
            || !IPAddress.TryParse(uri.Host.Trim('[', ']'), out _) || uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.UserInfo.Length > 0)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"{field} '{address}' must be an agent address such as https://127.0.0.2:7070.");
        }
        return uri.GetLeftPart(UriPartial.Authority);
    }

    private NodeAgent.NodeAgentClient Client(string address)
        => new(_channels.GetOrAdd(Validate(address, "address"), a => GrpcChannel.ForAddress(a, new GrpcChannelOptions
        {
            // Mutual TLS, and the other side must be a node of this cloud.
            HttpHandler = identity.NewHandler(peer => Cloud.Contracts.Trust.CloudIdentity.NodeOf(peer) is not null),
        })));

    public void Dispose()
    {
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }
    }
}
