using System.Security.Cryptography;
using Cloud.Agent.Hypervisor;
using Cloud.Agent.Qemu.Tests.Support;
using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu.Tests;

[Collection(QemuCollection.Name)]
public sealed class ImageStoreTests
{
    private readonly QemuImg _qemuImg = new("qemu-img");

    [Fact]
    public async Task Import_RawAndQcow2WithTheirChecksums_AndAVmBootsOnAnOverlayOfEach()
    {
        await using var node = new TestNode();
        var raw = Path.Combine(node.Root, "src.raw");
        var qcow2 = Path.Combine(node.Root, "src.qcow2");
        Directory.CreateDirectory(node.Root);
        await File.WriteAllBytesAsync(raw, new byte[4 << 20]);
        await _qemuImg.CreateBlankAsync(qcow2, 64L << 20, CancellationToken.None);

        var rawImage = await node.Hypervisor.Images.ImportAsync("img-raw", raw, Sha256(raw), CancellationToken.None);
        var qcowImage = await node.Hypervisor.Images.ImportAsync("img-qcow", qcow2, Sha256(qcow2).ToUpperInvariant(), CancellationToken.None);

        Assert.Equal(("raw", ImageKind.Disk, 4L << 20), (rawImage.Format, rawImage.Kind, rawImage.VirtualSizeBytes));
        Assert.Equal(("qcow2", 64L << 20), (qcowImage.Format, qcowImage.VirtualSizeBytes));
        Assert.Equal(Sha256(raw), rawImage.Sha256);
        foreach (var image in new[] { "img-raw", "img-qcow" })
        {
            var spec = Guests.Firmware("vm-" + image, diskGb: 1);
            spec.Image = image;
            var vm = await node.Hypervisor.CreateVmAsync(spec, CancellationToken.None);
            Assert.Equal(VmState.Running, vm.State);
            var overlay = await _qemuImg.InfoAsync(Path.Combine(node.VmDirectory(spec.VmId), "disk.qcow2"), "qcow2", forceShare: true, CancellationToken.None);
            Assert.Equal(node.Hypervisor.Images.DiskPath(node.Hypervisor.Images.Find(image)!), overlay.BackingFile);
            Assert.Equal(1L << 30, overlay.VirtualSize);
        }
    }

    [Fact]
    public async Task Import_WrongChecksum_OrAQcow2ThatPointsElsewhere_IsRefusedAndLeavesNothing()
    {
        await using var node = new TestNode();
        Directory.CreateDirectory(node.Root);
        var raw = Path.Combine(node.Root, "src.raw");
        await File.WriteAllBytesAsync(raw, new byte[1 << 20]);
        var sneaky = Path.Combine(node.Root, "sneaky.qcow2");
        await _qemuImg.CreateOverlayAsync(sneaky, raw, "raw", 1 << 20, CancellationToken.None);

        var wrongSum = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.Images.ImportAsync("img-bad", raw, new string('a', 64), CancellationToken.None));
        var notHex = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.Images.ImportAsync("img-bad", raw, "xyz", CancellationToken.None));
        var backing = await Assert.ThrowsAsync<HypervisorException>(() => node.Hypervisor.Images.ImportAsync("img-bad", sneaky, Sha256(sneaky), CancellationToken.None));

        Assert.Equal(HypervisorError.InvalidArgument, wrongSum.Error);
        Assert.Contains("SHA-256", wrongSum.Message, StringComparison.Ordinal);
        Assert.Equal(HypervisorError.InvalidArgument, notHex.Error);
        Assert.Equal(HypervisorError.InvalidArgument, backing.Error);
        Assert.Contains("backing or data file", backing.Message, StringComparison.Ordinal);
        Assert.Null(node.Hypervisor.Images.Find("img-bad"));
        Assert.Empty(node.Hypervisor.Images.List());
    }

    private static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
}
