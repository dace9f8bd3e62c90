using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Cloud.Agent.Hypervisor;
using Cloud.Agent.Qemu;
using Cloud.Contracts.Agent.V1;
using Cloud.Contracts.Node.V1;
using Cloud.Contracts.Trust;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace Cloud.Agent.Rpc;

/// <summary>Where pulled images go: the QEMU backend's image store, or the fake backend's memory.</summary>
internal interface IImageTarget
{
    /// <summary>True when the node holds the image with this SHA-256 already.</summary>
    bool Has(string imageId, string sha256);

    /// <summary>Adds the image from <paramref name="chunks"/>, checked; nothing is added if any check fails.</summary>
    Task ImportAsync(PullImageRequest image, IAsyncEnumerable<ReadOnlyMemory<byte>> chunks, CancellationToken cancellationToken);

    /// <summary>Removes the image the controller deleted; FailedPrecondition while a VM uses it.</summary>
    Task<DeleteImageResponse.Types.Outcome> RemoveAsync(string imageId, CancellationToken cancellationToken);

    /// <summary>The bytes of an image in the store, for a node that pulls it from here; NotFound when it is not held.</summary>
    Stream OpenRead(string imageId);
}

/// <summary>Where image bytes come from: the controller's ImageSource.</summary>
internal interface IImageSourceReader
{
    IAsyncEnumerable<ReadOnlyMemory<byte>> ReadAsync(string imageId, CancellationToken cancellationToken);
}

/// <summary>Image bytes from another node's store (PullImageRequest.source_node), or from the controller.</summary>
internal static class ImageSources
{
    public static IAsyncEnumerable<ReadOnlyMemory<byte>> Read(IImageSourceReader controller, PeerAgents peers, PullImageRequest request, CancellationToken cancellationToken)
        => request.SourceNode.Length > 0
            ? peers.ReadImageAsync(peers.Source(request.SourceNode, request.SourceGrant, PeerGrant.ImageKind, request.ImageId, "source_node"), request.ImageId, cancellationToken)
            : controller.ReadAsync(request.ImageId, cancellationToken);
}

/// <summary>
/// PullImage and DeleteImage. A pull makes an image present on the node. Concurrent pulls of one image share one
/// transfer; the transfer runs to its end even if the call that started it gives up, so the
/// others (and the retry) find the image. A failed transfer leaves nothing and is not remembered:
/// the next pull starts afresh.
/// </summary>
internal sealed partial class ImagePuller(IImageTarget target, IImageSourceReader source, PeerAgents peers, ILogger<ImagePuller> logger)
{
    private readonly ConcurrentDictionary<string, Lazy<Task<bool>>> _transfers = new(StringComparer.Ordinal);

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Hex();

    public async Task<PullImageResponse> PullAsync(PullImageRequest request, CancellationToken cancellationToken)
    {
        Validate(request);
        if (target.Has(request.ImageId, request.Sha256))
        {
            return new PullImageResponse { ImageId = request.ImageId, Transferred = false };
        }
        var transfer = new Lazy<Task<bool>>(() => TransferAsync(request));
        var running = _transfers.GetOrAdd(request.ImageId, transfer);
        var transferred = await running.Value.WaitAsync(cancellationToken);
        return new PullImageResponse { ImageId = request.ImageId, Transferred = transferred && ReferenceEquals(running, transfer) };
    }

    /// <summary>Removes an image the controller deleted; refused while a pull of it is under way, so that the pull cannot bring it back.</summary>
    public async Task<DeleteImageResponse> DeleteAsync(DeleteImageRequest request, CancellationToken cancellationToken)
    {
        ValidateId(request.ImageId);
        if (_transfers.ContainsKey(request.ImageId))
        {
            throw new HypervisorException(HypervisorError.FailedPrecondition, $"Image {request.ImageId} is being pulled; ask again once the pull is over.");
        }
        return new DeleteImageResponse { Outcome = await target.RemoveAsync(request.ImageId, cancellationToken) };
    }

    /// <summary>True when this transfer brought the image (false: it had arrived meanwhile).</summary>
    private async Task<bool> TransferAsync(PullImageRequest request)
    {
        try
        {
            // Off the caller's token on purpose: other callers may be waiting on this transfer.
            await Task.Yield();
            if (target.Has(request.ImageId, request.Sha256))
            {
                return false;
            }
            await target.ImportAsync(request, ImageSources.Read(source, peers, request, CancellationToken.None), CancellationToken.None);
            Log.Pulled(logger, request.ImageId, request.SizeBytes);
            return true;
        }
        catch (Exception e)
        {
            Log.PullFailed(logger, request.ImageId, e.Message);
            throw;
        }
        finally
        {
            _transfers.TryRemove(request.ImageId, out _);
        }
    }

    private static void ValidateId(string imageId)
    {
        if (!VmSpecValidator.IsSafeId(imageId))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"image_id '{imageId}' is invalid: use 1-64 letters, digits, '-' or '_'.");
        }
    }

    private static void Validate(PullImageRequest request)
    {
        ValidateId(request.ImageId);
        if (request.Format is not ("raw" or "qcow2"))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "format must be raw or qcow2.");
        }
        if (!Sha256Hex().IsMatch(request.Sha256))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "sha256 must be 64 lowercase hexadecimal digits.");
        }
        if (request.SizeBytes <= 0)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "size_bytes must be positive.");
        }
        if (request.SourceNode.Length > 0)
        {
            PeerAgents.Validate(request.SourceNode, "source_node");
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1101, Level = LogLevel.Information, Message = "Pulled image {ImageId} ({Bytes} bytes) from the controller")]
        public static partial void Pulled(ILogger logger, string imageId, long bytes);

        [LoggerMessage(EventId = 1102, Level = LogLevel.Warning, Message = "Pull of image {ImageId} failed: {Error}")]
        public static partial void PullFailed(ILogger logger, string imageId, string error);
    }
}

/// <summary>Reads an image from the controller's ImageSource with the agent's registration token.</summary>
internal sealed class GrpcImageSourceReader(ImageSource.ImageSourceClient client) : IImageSourceReader
{
    private static readonly TimeSpan Deadline = TimeSpan.FromHours(2);

    public async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadAsync(string imageId, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var call = client.ReadImage(new ReadImageRequest { ImageId = imageId }, new CallOptions(deadline: DateTime.UtcNow + Deadline, cancellationToken: cancellationToken));
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            yield return call.ResponseStream.Current.Data.Memory;
        }
    }
}

/// <summary>The QEMU backend's image store.</summary>
internal sealed class QemuImageTarget(QemuHypervisor hypervisor) : IImageTarget
{
    public bool Has(string imageId, string sha256) => hypervisor.Images.Find(imageId) is { } image && image.Sha256 == sha256 && hypervisor.Images.MarkUsed(imageId);

    public Task ImportAsync(PullImageRequest image, IAsyncEnumerable<ReadOnlyMemory<byte>> chunks, CancellationToken cancellationToken)
        => hypervisor.Images.ImportChunksAsync(image.ImageId, image.Format, image.Sha256, image.SizeBytes, chunks, cancellationToken);

    public async Task<DeleteImageResponse.Types.Outcome> RemoveAsync(string imageId, CancellationToken cancellationToken)
        => await hypervisor.RemoveImageAsync(imageId, cancellationToken) switch
        {
            ImageRemoval.Removed => DeleteImageResponse.Types.Outcome.Removed,
            ImageRemoval.KeptSeeded => DeleteImageResponse.Types.Outcome.KeptSeeded,
            _ => DeleteImageResponse.Types.Outcome.Absent,
        };

    public Stream OpenRead(string imageId) => hypervisor.Images.OpenDisk(imageId);
}

/// <summary>The fake backend keeps no bytes; it still checks every transfer, and remembers what it received.</summary>
internal sealed class FakeImageTarget : IImageTarget
{
    private readonly ConcurrentDictionary<string, string> _images = new(StringComparer.Ordinal);

    public bool Has(string imageId, string sha256) => _images.TryGetValue(imageId, out var held) && held == sha256;

    public async Task ImportAsync(PullImageRequest image, IAsyncEnumerable<ReadOnlyMemory<byte>> chunks, CancellationToken cancellationToken)
    {
        await ImageTransfer.CopyVerifiedAsync(image.ImageId, chunks, Stream.Null, image.Sha256, image.SizeBytes, cancellationToken);
        _images[image.ImageId] = image.Sha256;
    }

    public Task<DeleteImageResponse.Types.Outcome> RemoveAsync(string imageId, CancellationToken cancellationToken)
        => Task.FromResult(_images.TryRemove(imageId, out _) ? DeleteImageResponse.Types.Outcome.Removed : DeleteImageResponse.Types.Outcome.Absent);

    public Stream OpenRead(string imageId) => throw new HypervisorException(HypervisorError.NotFound, "The fake backend keeps no image bytes to serve.");
}
