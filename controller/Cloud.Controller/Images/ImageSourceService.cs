using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Contracts.Node.V1;
using Grpc.Core;
using Google.Protobuf;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Images;

/// <summary>
/// cloud.node.v1.ImageSource: agents pull the bytes of ACTIVE stored images, in order. The agent
/// checks size and SHA-256 itself, so a transfer damaged anywhere on the way is refused there.
/// A node pulls only an image that one of its VMs needs: a VM placed on it, or one moving to it
/// (held there by a move's claim). Any other image, a tenant's private one above all, is
/// answered as unknown.
/// </summary>
[Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Node)]
internal sealed class ImageSourceService(
    IDbContextFactory<LedgerDbContext> contexts,
    Npgsql.NpgsqlDataSource dataSource,
    ImageFiles files) : ImageSource.ImageSourceBase
{
    /// <summary>Well under the transport's 4 MiB message limit, large enough to keep the stream busy.</summary>
    public const int ChunkBytes = 256 * 1024;

    public override async Task ReadImage(ReadImageRequest request, IServerStreamWriter<ImageChunk> responseStream, ServerCallContext context)
    {
        var cancellationToken = context.CancellationToken;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            var known = await db.Images.AsNoTracking()
                .AnyAsync(i => i.Id == request.ImageId && i.State == ImageStates.Active && i.Stored, cancellationToken);
            if (!known || !await NeededByAsync(request.ImageId, ApiCallers.NodeOf(context), cancellationToken))
            {
                throw new RpcException(new Status(StatusCode.NotFound, $"Image '{request.ImageId}' is not an ACTIVE image of the controller's store that a VM of this node needs."));
            }
        }
        FileStream file;
        try
        {
            file = files.OpenRead(request.ImageId);
        }
        catch (FileNotFoundException)
        {
            throw new RpcException(new Status(StatusCode.DataLoss, $"The controller's store has no file for image '{request.ImageId}'."));
        }
        await using (file)
        {
            var buffer = new byte[ChunkBytes];
            int read;
            while ((read = await file.ReadAsync(buffer, cancellationToken)) > 0)
            {
                await responseStream.WriteAsync(new ImageChunk { Data = ByteString.CopyFrom(buffer, 0, read) }, cancellationToken);
            }
        }
    }

    private async Task<bool> NeededByAsync(string imageId, string node, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            """
            SELECT EXISTS (
              SELECT 1 FROM vms v JOIN nodes n ON n.name = $2
               WHERE v.image_id = $1
                 AND (v.node_id = n.id
                      OR EXISTS (SELECT 1 FROM operations o JOIN allocations a ON a.consumer_id = o.id
                                  WHERE o.target_id = v.id::text AND o.state IN ('PENDING', 'RUNNING') AND a.node_id = n.id)))
            """);
        command.Parameters.Add(new() { Value = imageId });
        command.Parameters.Add(new() { Value = node });
        return await command.ExecuteScalarAsync(cancellationToken) is true;
    }
}
