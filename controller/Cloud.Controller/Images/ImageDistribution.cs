using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Images;

/// <summary>
/// Before a VM is created from an uploaded image, its node must hold the image: the agent pulls
/// it from the controller (ImageSource) unless it has it already, checking the SHA-256 before
/// the image enters its store. Images seeded straight into the nodes' stores are left alone.
/// Each node that pulled an image is recorded (image_copies), for <see cref="ImageCopyPurger"/>.
/// </summary>
internal sealed class ImageDistribution(IDbContextFactory<LedgerDbContext> contexts, IOptions<ImageOptions> options, TimeProvider time)
{
    /// <summary>Throws the agent's <see cref="RpcException"/> when the node cannot get the image.</summary>
    public async Task EnsureOnNodeAsync(string? imageId, Guid nodeId, AgentConnection agent, CancellationToken cancellationToken)
    {
        if (imageId is null)
        {
            return;
        }
        ImageEntity? image;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            image = await db.Images.AsNoTracking().SingleOrDefaultAsync(i => i.Id == imageId, cancellationToken);
        }
        if (image is not { Stored: true })
        {
            return;
        }
        if (image.State != ImageStates.Active)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Image {imageId} is {image.State}."));
        }
        // One attempt with a long deadline: a pull moves the whole image. A failed create
        // operation is the retry; the agent keeps nothing of a failed pull.
        var request = new AgentV1.PullImageRequest { ImageId = image.Id, Format = image.Format, Sha256 = image.Sha256, SizeBytes = image.SizeBytes };
        await agent.Client.PullImageAsync(request, new CallOptions(deadline: time.GetUtcNow().UtcDateTime + options.Value.PullTimeout, cancellationToken: cancellationToken));
        // Recorded even if the image was deleted meanwhile: the purger then removes the copy.
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            var now = time.GetUtcNow();
            await db.Database.ExecuteSqlInterpolatedAsync($"""
                INSERT INTO image_copies (image_id, node_id, pulled_at) VALUES ({image.Id}, {nodeId}, {now})
                ON CONFLICT (image_id, node_id) DO UPDATE SET pulled_at = excluded.pulled_at
                """, cancellationToken);
        }
    }
}
