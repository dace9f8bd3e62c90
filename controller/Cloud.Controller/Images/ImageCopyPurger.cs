using System.Threading.Channels;
using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Images;

/// <summary>
/// Removes the nodes' copies of deleted images. Every copy recorded in image_copies whose image
/// is DELETED is asked away from its node (the agent's DeleteImage) and forgotten once the node
/// answered. Runs every <see cref="ImageOptions.CopyPurgeInterval"/>, and at once after a delete
/// on this replica. A node that is down, or still runs a VM on the image, keeps its row and is
/// asked again the next round; a node removed from the cloud takes its rows with it. Replicas
/// may ask the same node at once: the agent's answer is the same either way.
/// </summary>
internal sealed partial class ImageCopyPurger(
    IDbContextFactory<LedgerDbContext> contexts,
    AgentConnections agents,
    IOptions<ImageOptions> options,
    TimeProvider time,
    ILogger<ImageCopyPurger> logger) : BackgroundService
{
    private const int BatchSize = 500;
    private const int ConcurrentNodes = 8;

    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    /// <summary>Asks for a round now rather than at the next interval.</summary>
    public void Wake() => _wake.Writer.TryWrite(true);

    /// <summary>One round: every pending copy on a node that is up, asked once; the copies the nodes no longer hold.</summary>
    public async Task<int> PurgeOnceAsync(CancellationToken cancellationToken)
    {
        List<PendingCopy> pending;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            pending = await (
                from copy in db.ImageCopies
                join image in db.Images on copy.ImageId equals image.Id
                join node in db.Nodes on copy.NodeId equals node.Id
                where image.State == ImageStates.Deleted && node.State == NodeStates.Up
                orderby copy.PulledAt
                select new PendingCopy(copy.ImageId, copy.NodeId, node.Name, node.Address))
                .Take(BatchSize)
                .ToListAsync(cancellationToken);
        }
        var gone = 0;
        await Parallel.ForEachAsync(pending, new ParallelOptions { MaxDegreeOfParallelism = ConcurrentNodes, CancellationToken = cancellationToken }, async (copy, ct) =>
        {
            if (await AskNodeAsync(copy, ct))
            {
                await using var db = await contexts.CreateDbContextAsync(ct);
                await db.ImageCopies.Where(c => c.ImageId == copy.ImageId && c.NodeId == copy.NodeId).ExecuteDeleteAsync(ct);
                Interlocked.Increment(ref gone);
            }
        });
        return gone;
    }

    /// <summary>True when the node is done with the copy: removed, never held, or not the catalog's to remove.</summary>
    private async Task<bool> AskNodeAsync(PendingCopy copy, CancellationToken cancellationToken)
    {
        try
        {
            var answer = await agents.For(copy.NodeName, copy.NodeAddress).CallAsync(
                (c, o) => c.DeleteImageAsync(new AgentV1.DeleteImageRequest { ImageId = copy.ImageId }, o), cancellationToken);
            Log.CopyRemoved(logger, copy.ImageId, copy.NodeName, answer.Outcome);
            return true;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition)
        {
            Log.CopyKept(logger, copy.ImageId, copy.NodeName, e.Status.Detail);
            return false;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unimplemented)
        {
            // An agent older than DeleteImage: asking again will not help; its retention removes the copy.
            Log.NodeCannotRemove(logger, copy.ImageId, copy.NodeName);
            return true;
        }
        catch (RpcException e)
        {
            Log.AskFailed(logger, copy.ImageId, copy.NodeName, e.Status.Detail);
            return false;
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await PurgeOnceAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.RoundFailed(logger, e);
            }
            await Task.WhenAny(
                Task.Delay(options.Value.CopyPurgeInterval, time, stoppingToken),
                _wake.Reader.WaitToReadAsync(stoppingToken).AsTask());
            _wake.Reader.TryRead(out _);
        }
    }

    private sealed record PendingCopy(string ImageId, Guid NodeId, string NodeName, string NodeAddress);

    private static partial class Log
    {
        [LoggerMessage(EventId = 7003, Level = LogLevel.Information, Message = "Deleted image {ImageId}: node {NodeName} answered {Outcome}")]
        public static partial void CopyRemoved(ILogger logger, string imageId, string nodeName, AgentV1.DeleteImageResponse.Types.Outcome outcome);

        [LoggerMessage(EventId = 7004, Level = LogLevel.Information, Message = "Deleted image {ImageId}: node {NodeName} keeps its copy for now ({Detail}); asking again later")]
        public static partial void CopyKept(ILogger logger, string imageId, string nodeName, string detail);

        [LoggerMessage(EventId = 7005, Level = LogLevel.Warning, Message = "Deleted image {ImageId}: node {NodeName} could not be asked to remove its copy ({Detail}); asking again later")]
        public static partial void AskFailed(ILogger logger, string imageId, string nodeName, string detail);

        [LoggerMessage(EventId = 7006, Level = LogLevel.Warning, Message = "Deleted image {ImageId}: node {NodeName} runs an agent without DeleteImage; its retention removes the copy")]
        public static partial void NodeCannotRemove(ILogger logger, string imageId, string nodeName);

        [LoggerMessage(EventId = 7007, Level = LogLevel.Warning, Message = "Removing copies of deleted images failed")]
        public static partial void RoundFailed(ILogger logger, Exception exception);
    }
}
