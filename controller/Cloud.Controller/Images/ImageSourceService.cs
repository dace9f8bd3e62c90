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
/// </summary>
[Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Node)]
internal sealed class ImageSourceService(
    IDbContextFactory<LedgerDbContext> contexts,
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
            if (!known)
            {
                throw new RpcException(new Status(StatusCode.NotFound, $"Image '{request.ImageId}' is not an ACTIVE image of the controller's store."));
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
}
