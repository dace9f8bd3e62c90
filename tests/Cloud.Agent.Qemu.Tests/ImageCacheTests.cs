using Cloud.Agent.Hypervisor;
using Cloud.Agent.Qemu.Tests.Support;
using Cloud.Contracts.Agent.V1;
using Cloud.Testing;

namespace Cloud.Agent.Qemu.Tests;

/// <summary>
/// Pulled images leave the node once no VM uses them and nothing wanted them for the retention,
/// or when the controller deletes them; images put there by hand, images in use and images
/// wanted lately stay.
/// </summary>
[Collection(QemuCollection.Name)]
public sealed class ImageCacheTests
{
    private static readonly TimeSpan Retention = TimeSpan.FromDays(1);

    [Fact]
    public async Task RemoveUnusedImages_TakesOnlyPulledImagesUnusedForTheRetention()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var node = new TestNode(time: clock);
        var images = node.Hypervisor.Images;
        var bytes = await BlankQcow2Async(node);
        foreach (var id in new[] { "old", "in-use", "wanted", "garbled" })
        {
            await images.ImportChunksAsync(id, "qcow2", ImagePullStoreTests.Sha256(bytes), bytes.Length, ImagePullStoreTests.Chunks(bytes), CancellationToken.None);
        }
        var byHand = Path.Combine(node.Root, "by-hand.qcow2");
        await File.WriteAllBytesAsync(byHand, bytes);
        await images.ImportAsync("by-hand", byHand, ImagePullStoreTests.Sha256(bytes), CancellationToken.None);
        await node.Hypervisor.CreateVmAsync(new VmSpec { VmId = "vm-on-image", Name = "vm-on-image", Image = "in-use", Shape = new VmShape { Vcpus = 1, MemoryMb = 128, DiskGb = 1 } }, CancellationToken.None);

        // Within the retention nothing goes.
        clock.Advance(Retention - TimeSpan.FromMinutes(1));
        Assert.Empty(await node.Hypervisor.RemoveUnusedImagesAsync(Retention, CancellationToken.None));

        clock.Advance(TimeSpan.FromHours(1));
        Assert.True(images.MarkUsed("wanted"));
        await File.WriteAllTextAsync(Path.Combine(images.Root, "garbled", "used-at"), "yesterday-ish");
        var removed = await node.Hypervisor.RemoveUnusedImagesAsync(Retention, CancellationToken.None);

        Assert.Equal(["old"], removed);
        Assert.Null(images.Find("old"));
        Assert.False(Directory.Exists(Path.Combine(images.Root, "old")));
        Assert.DoesNotContain(Directory.EnumerateDirectories(images.Root), d => Path.GetFileName(d).Contains("old", StringComparison.Ordinal));
        Assert.Equal(["by-hand", "garbled", "in-use", "wanted"], images.List().Select(i => i.ImageId));
        Assert.False(images.Find("by-hand")!.Pulled);
        Assert.False(images.MarkUsed("old"));

        // The VM gone, its image goes at the next sweep; the one wanted lately waits its day.
        await node.Hypervisor.DeleteVmAsync("vm-on-image", CancellationToken.None);
        Assert.Equal(["in-use"], await node.Hypervisor.RemoveUnusedImagesAsync(Retention, CancellationToken.None));
        clock.Advance(Retention);
        Assert.Equal(["wanted"], await node.Hypervisor.RemoveUnusedImagesAsync(Retention, CancellationToken.None));

        // A removed image can be pulled again.
        var again = await images.ImportChunksAsync("old", "qcow2", ImagePullStoreTests.Sha256(bytes), bytes.Length, ImagePullStoreTests.Chunks(bytes), CancellationToken.None);
        Assert.True(again.Pulled);
    }

    [Fact]
    public async Task RemoveImage_TakesADisposableImageNoVmUses_AndKeepsTheRest()
    {
        await using var node = new TestNode();
        var images = node.Hypervisor.Images;
        var bytes = await BlankQcow2Async(node);
        foreach (var id in new[] { "deleted", "in-use" })
        {
            await images.ImportChunksAsync(id, "qcow2", ImagePullStoreTests.Sha256(bytes), bytes.Length, ImagePullStoreTests.Chunks(bytes), CancellationToken.None);
        }
        var byHand = Path.Combine(node.Root, "by-hand.qcow2");
        await File.WriteAllBytesAsync(byHand, bytes);
        await images.ImportAsync("by-hand", byHand, ImagePullStoreTests.Sha256(bytes), CancellationToken.None);
        await node.Hypervisor.CreateVmAsync(new VmSpec { VmId = "vm-on-image", Name = "vm-on-image", Image = "in-use", Shape = new VmShape { Vcpus = 1, MemoryMb = 128, DiskGb = 1 } }, CancellationToken.None);

        Assert.Equal(ImageRemoval.Removed, await node.Hypervisor.RemoveImageAsync("deleted", CancellationToken.None));
        Assert.Equal(ImageRemoval.Absent, await node.Hypervisor.RemoveImageAsync("deleted", CancellationToken.None));
        Assert.Equal(ImageRemoval.KeptSeeded, await node.Hypervisor.RemoveImageAsync("by-hand", CancellationToken.None));
        var inUse = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.RemoveImageAsync("in-use", CancellationToken.None));
        Assert.Equal(HypervisorError.FailedPrecondition, inUse.Error);
        Assert.Contains("vm-on-image", inUse.Message, StringComparison.Ordinal);
        var invalid = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.RemoveImageAsync("../images", CancellationToken.None));
        Assert.Equal(HypervisorError.InvalidArgument, invalid.Error);

        Assert.Equal(["by-hand", "in-use"], images.List().Select(i => i.ImageId));
        Assert.False(Directory.Exists(Path.Combine(images.Root, "deleted")));
        // The VM (stopped, its disk an overlay on the image) still starts: nothing it needs went.
        Assert.Equal(VmState.Running, (await node.Hypervisor.StartVmAsync("vm-on-image", paused: false, CancellationToken.None)).State);
        await node.Hypervisor.DeleteVmAsync("vm-on-image", CancellationToken.None);
        Assert.Equal(ImageRemoval.Removed, await node.Hypervisor.RemoveImageAsync("in-use", CancellationToken.None));
    }

    [Theory]
    [InlineData(-1, 3600, "UnusedImageRetention")]
    [InlineData(0, 0, "ImageSweepInterval")]
    public void Options_RefuseANegativeRetentionAndASweepUnderASecond(int retentionSeconds, int intervalSeconds, string named)
    {
        var failures = QemuOptionsValidator.Check(new QemuOptions
        {
            DataDirectory = "/var/lib/cloud/agent",
            Accelerator = "tcg",
            UnusedImageRetention = TimeSpan.FromSeconds(retentionSeconds),
            ImageSweepInterval = TimeSpan.FromSeconds(intervalSeconds),
        }, new AcceleratorProbe(false, false));

        Assert.Contains(failures, f => f.Contains(named, StringComparison.Ordinal));
    }

    private static async Task<byte[]> BlankQcow2Async(TestNode node)
    {
        Directory.CreateDirectory(node.Root);
        var path = Path.Combine(node.Root, "blank.qcow2");
        await new QemuImg("qemu-img").CreateBlankAsync(path, 64L << 20, CancellationToken.None);
        return await File.ReadAllBytesAsync(path);
    }
}
