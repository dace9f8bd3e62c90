using System.Collections.Concurrent;
using System.Net;
using System.Runtime.CompilerServices;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;
using Cloud.Contracts.Trust;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Agent.Rpc;

/// <summary>Another node to read from, at the controller's word: its address, and the grant that names it and this node.</summary>
internal sealed record PeerSource(string Address, string Holder, string Grant);

/// <summary>
/// Calls this agent makes to other nodes' agents, at the controller's word: the source of a VM
/// arriving here (its snapshots), or the node whose store holds an image wanted here. The
/// controller names them by the address they registered; only a literal IP address and port are
/// taken, so a request cannot point the agent at a name of its choosing. Each read carries the
/// controller's grant (<see cref="PeerGrant"/>), which the other node requires, and the TLS
/// connection accepts only the node the grant names as the holder.
/// </summary>
internal sealed class PeerAgents(Identity.NodeIdentity identity) : IDisposable
{
    private static readonly TimeSpan TransferDeadline = TimeSpan.FromHours(2);
    private readonly ConcurrentDictionary<(string Address, string Holder), GrpcChannel> _channels = new();

    /// <summary>
    /// The peer at <paramref name="address"/> with the controller's <paramref name="grant"/>,
    /// checked: signed by the controller, for this node and for <paramref name="kind"/>
    /// <paramref name="resource"/>. Anything else is refused as InvalidArgument.
    /// </summary>
    public PeerSource Source(string address, string grant, string kind, string resource, string field)
    {
        var validated = Validate(address, field);
        var checkedGrant = PeerGrant.Verify(grant, identity.Verifies, identity.Now, out var problem);
        if (checkedGrant is null || checkedGrant.Peer != identity.NodeName || checkedGrant.Kind != kind || checkedGrant.Resource != resource)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument,
                $"{field} needs the controller's grant for this node to read {kind} {resource}: {(checkedGrant is null ? problem : "the grant names something else.")}");
        }
        return new PeerSource(validated, checkedGrant.Holder, grant);
    }

    public async Task<IReadOnlyList<Snapshot>> ListSnapshotsAsync(PeerSource source, string vmId, CancellationToken cancellationToken)
    {
        var response = await Client(source).ListSnapshotsAsync(new VmRef { VmId = vmId }, Options(source, DateTime.UtcNow.AddMinutes(1), cancellationToken));
        return response.Snapshots;
    }

    public async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadSnapshotFileAsync(PeerSource source, string vmId, string snapshotId, string name,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var call = Client(source).ReadSnapshotFile(new ReadSnapshotFileRequest { VmId = vmId, SnapshotId = snapshotId, Name = name },
            Options(source, DateTime.UtcNow + TransferDeadline, cancellationToken));
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            yield return call.ResponseStream.Current.Data.Memory;
        }
    }

    public async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadImageAsync(PeerSource source, string imageId, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var call = Client(source).ReadImage(new ReadStoredImageRequest { ImageId = imageId }, Options(source, DateTime.UtcNow + TransferDeadline, cancellationToken));
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

    private static CallOptions Options(PeerSource source, DateTime deadline, CancellationToken cancellationToken)
        => new(new Metadata { { PeerGrant.Header, source.Grant } }, deadline, cancellationToken);

    private NodeAgent.NodeAgentClient Client(PeerSource source)
        => new(_channels.GetOrAdd((source.Address, source.Holder), key => GrpcChannel.ForAddress(key.Address, new GrpcChannelOptions
        {
            // Mutual TLS, and the other side must be the node the grant names.
            HttpHandler = identity.NewHandler(peer => CloudIdentity.NodeOf(peer) == key.Holder),
        })));

    public void Dispose()
    {
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }
    }
}
