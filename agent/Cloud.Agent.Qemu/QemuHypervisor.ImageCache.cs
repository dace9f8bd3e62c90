using Cloud.Agent.Hypervisor;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Cloud.Agent.Qemu;

/// <summary>What <see cref="QemuHypervisor.RemoveImageAsync"/> did.</summary>
public enum ImageRemoval
{
    Removed,
    Absent,
    KeptSeeded,
}

/// <summary>
/// The node's cache of disposable images (<see cref="ImageInfo.Disposable"/>): an image the
/// controller sent, or a snapshot export, is kept while any VM here uses it (its disk is an
/// overlay on the image) and for <see cref="QemuOptions.UnusedImageRetention"/> after it was
/// last wanted, then removed; or sooner, when the controller deletes it. The controller pulls
/// (or exports) it again when a VM needs it.
/// </summary>
public sealed partial class QemuHypervisor
{
    /// <summary>
    /// Removes an image the controller no longer has, now. Throws FailedPrecondition while a VM
    /// on the node uses it; an image put here by hand is kept. Holds the registry gate, so no VM
    /// is created from it meanwhile.
    /// </summary>
    public async Task<ImageRemoval> RemoveImageAsync(string imageId, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateId(imageId, "Image id");
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        await _registryGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (Images.Find(imageId) is not { } image)
            {
                return ImageRemoval.Absent;
            }
            if (!image.Disposable)
            {
                return ImageRemoval.KeptSeeded;
            }
            var users = _vms.Values.Where(v => !v.Removed && v.Spec.Image == imageId).Select(v => v.Spec.VmId).ToList();
            if (users.Count > 0)
            {
                throw new HypervisorException(HypervisorError.FailedPrecondition, $"Image {imageId} backs VM(s) {string.Join(", ", users)} on this node.");
            }
            Images.Delete(imageId);
            Log.DeletedImageRemoved(_logger, imageId, image.SizeBytes);
            return ImageRemoval.Removed;
        }
        finally
        {
            _registryGate.Release();
        }
    }

    /// <summary>
    /// Removes every disposable image that no VM on the node refers to and that was last used no
    /// later than <paramref name="unusedFor"/> ago; the ids removed. Holds the registry gate, so no
    /// VM is created from an image while it is being removed.
    /// </summary>
    public async Task<IReadOnlyList<string>> RemoveUnusedImagesAsync(TimeSpan unusedFor, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var cutoff = _time.GetUtcNow() - unusedFor;
        var removed = new List<string>();
        await _registryGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var inUse = _vms.Values.Where(v => !v.Removed).Select(v => v.Spec.Image).ToHashSet(StringComparer.Ordinal);
            foreach (var image in Images.List())
            {
                if (!image.Disposable || inUse.Contains(image.ImageId))
                {
                    continue;
                }
                var lastUsed = Images.LastUsedAt(image);
                if (Images.DeleteIfUnusedSince(image, cutoff))
                {
                    Log.UnusedImageRemoved(_logger, image.ImageId, lastUsed, image.SizeBytes);
                    removed.Add(image.ImageId);
                }
            }
        }
        finally
        {
            _registryGate.Release();
        }
        return removed;
    }
}

/// <summary>Runs <see cref="QemuHypervisor.RemoveUnusedImagesAsync"/> every <see cref="QemuOptions.ImageSweepInterval"/>, unless the retention is zero.</summary>
internal sealed class UnusedImageSweeper(QemuHypervisor hypervisor, QemuOptions options, TimeProvider time, ILogger<UnusedImageSweeper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.UnusedImageRetention == TimeSpan.Zero)
        {
            return;
        }
        using var timer = new PeriodicTimer(options.ImageSweepInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                await hypervisor.RemoveUnusedImagesAsync(options.UnusedImageRetention, stoppingToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or HypervisorException)
            {
                Log.ImageSweepFailed(logger, e);
            }
        }
    }
}
