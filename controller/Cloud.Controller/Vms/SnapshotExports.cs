using Cloud.Controller.Data;
using Cloud.Controller.Images;
using Cloud.Controller.Nodes;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Vms;

/// <summary>Where a snapshot's export is (a node's image store) and what it is (SHA-256, size).</summary>
internal sealed record SnapshotExport(NodeEntity Node, string Sha256, long SizeBytes);

/// <summary>
/// A snapshot's disk as an image (snap-&lt;id&gt;) that any node can start a VM from: exported into the
/// store of the node that holds the snapshot, recorded in the snapshot's row, and pulled from that
/// node by the node a VM goes to. Each step is safe to run again: an export already made is found
/// in the row, and a node that holds the image answers its pull at once.
/// </summary>
internal sealed class SnapshotExports(
    IDbContextFactory<LedgerDbContext> contexts,
    NpgsqlDataSource dataSource,
    AgentConnections agents,
    IOptions<ImageOptions> imageOptions,
    Trust.PeerGrants grants,
    TimeProvider time)
{
    /// <summary>
    /// Exports the snapshot on <paramref name="node"/>, the node that holds it, and records where and
    /// what the export is. Throws the agent's <see cref="RpcException"/> when it cannot.
    /// </summary>
    public async Task<SnapshotExport> ExportAsync(SnapshotEntity snapshot, NodeEntity node, string imageId, CancellationToken cancellationToken)
    {
        var agent = agents.For(node);
        var request = new AgentV1.ExportSnapshotRequest { VmId = snapshot.VmId.ToString("N"), SnapshotId = snapshot.Id.ToString("N"), ImageId = imageId };
        AgentV1.ExportSnapshotResponse exported;
        try
        {
            exported = await agent.CallAsync((c, o) => c.ExportSnapshotAsync(request, o), cancellationToken);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.AlreadyExists)
        {
            // Made before: by an earlier create from this snapshot, or by this one before a crash.
            if (await RecordedAsync(snapshot.Id, cancellationToken) is { } recorded && recorded.Node.Id == node.Id)
            {
                return recorded;
            }
            // Made but never recorded (a crash in between): the node forgets it (refused while a
            // VM of its own still runs from it) and exports it again, to learn what it is.
            await agent.CallAsync((c, o) => c.DeleteImageAsync(new AgentV1.DeleteImageRequest { ImageId = imageId }, o), cancellationToken);
            exported = await agent.CallAsync((c, o) => c.ExportSnapshotAsync(request, o), cancellationToken);
        }
        await using (var command = dataSource.CreateCommand(
            "UPDATE snapshots SET export_node_id = $2, export_sha256 = $3, export_size_bytes = $4, updated_at = $5 WHERE id = $1"))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = snapshot.Id });
            command.Parameters.Add(new NpgsqlParameter { Value = node.Id });
            command.Parameters.Add(new NpgsqlParameter { Value = exported.Sha256 });
            command.Parameters.Add(new NpgsqlParameter { Value = exported.SizeBytes });
            command.Parameters.Add(new NpgsqlParameter { Value = time.GetUtcNow() });
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        return new SnapshotExport(node, exported.Sha256, exported.SizeBytes);
    }

    /// <summary>The export recorded in the snapshot's row, or null when there is none (or its node is gone).</summary>
    public async Task<SnapshotExport?> RecordedAsync(Guid snapshotId, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var row = await db.Snapshots.AsNoTracking().Where(s => s.Id == snapshotId)
            .Select(s => new { s.ExportNodeId, s.ExportSha256, s.ExportSizeBytes }).SingleOrDefaultAsync(cancellationToken);
        if (row is not { ExportNodeId: { } nodeId, ExportSha256: { } sha256, ExportSizeBytes: { } size })
        {
            return null;
        }
        return await db.Nodes.AsNoTracking().SingleOrDefaultAsync(n => n.Id == nodeId, cancellationToken) is { } node
            ? new SnapshotExport(node, sha256, size)
            : null;
    }

    /// <summary>
    /// Makes the export present on <paramref name="target"/>, pulled from the exporting node's
    /// store and checked against its SHA-256; nothing to do when the target made the export.
    /// One attempt with a long deadline, as for images: the operation is the retry.
    /// </summary>
    public async Task EnsureOnNodeAsync(SnapshotExport export, string imageId, NodeEntity target, CancellationToken cancellationToken)
    {
        if (export.Node.Id == target.Id)
        {
            return;
        }
        var request = new AgentV1.PullImageRequest
        {
            ImageId = imageId,
            Format = "qcow2",
            Sha256 = export.Sha256,
            SizeBytes = export.SizeBytes,
            SourceNode = export.Node.Address,
            SourceGrant = grants.ForImage(target.Name, export.Node.Name, imageId),
        };
        await agents.For(target).Client.PullImageAsync(request,
            new CallOptions(deadline: time.GetUtcNow().UtcDateTime + imageOptions.Value.PullTimeout, cancellationToken: cancellationToken));
    }
}
