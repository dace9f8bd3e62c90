using System.Security.Cryptography;
using Cloud.Agent.Hypervisor;
using Cloud.Agent.Qemu.Tests.Support;

namespace Cloud.Agent.Qemu.Tests;

/// <summary>Images arriving as a stream (a pull from the controller) enter the store only when every check passes.</summary>
[Collection(QemuCollection.Name)]
public sealed class ImagePullStoreTests
{
    private readonly QemuImg _qemuImg = new("qemu-img");

    [Fact]
    public async Task ImportChunks_RightBytes_EntersTheStore()
    {
        await using var node = new TestNode();
        var bytes = await Qcow2Async(node, backing: false);

        var image = await node.Hypervisor.Images.ImportChunksAsync("pulled", "qcow2", Sha256(bytes), bytes.Length, Chunks(bytes), CancellationToken.None);

        Assert.Equal(("qcow2", 64L << 20, Sha256(bytes)), (image.Format, image.VirtualSizeBytes, image.Sha256));
        Assert.Equal(bytes, await File.ReadAllBytesAsync(node.Hypervisor.Images.DiskPath(image)));
    }

    [Theory]
    [InlineData("raw", false, "not the expected raw")]
    [InlineData("qcow2", true, "backing")]
    public async Task ImportChunks_WrongFormat_OrABackingFile_IsRefused_AndLeavesNothing(string declared, bool backing, string reason)
    {
        await using var node = new TestNode();
        var bytes = await Qcow2Async(node, backing);

        var error = await Assert.ThrowsAsync<HypervisorException>(() =>
            node.Hypervisor.Images.ImportChunksAsync("pulled", declared, Sha256(bytes), bytes.Length, Chunks(bytes), CancellationToken.None));

        Assert.Equal(HypervisorError.InvalidArgument, error.Error);
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
        Assert.Null(node.Hypervisor.Images.Find("pulled"));
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(node.Hypervisor.Images.Root), e => Path.GetFileName(e).Contains("pulled", StringComparison.Ordinal));
    }

    private async Task<byte[]> Qcow2Async(TestNode node, bool backing)
    {
        Directory.CreateDirectory(node.Root);
        var path = Path.Combine(node.Root, "src.qcow2");
        if (backing)
        {
            var raw = Path.Combine(node.Root, "base.raw");
            await File.WriteAllBytesAsync(raw, new byte[1 << 20]);
            await _qemuImg.CreateOverlayAsync(path, raw, "raw", 64L << 20, CancellationToken.None);
        }
        else
        {
            await _qemuImg.CreateBlankAsync(path, 64L << 20, CancellationToken.None);
        }
        return await File.ReadAllBytesAsync(path);
    }

    internal static async IAsyncEnumerable<ReadOnlyMemory<byte>> Chunks(byte[] bytes)
    {
        for (var offset = 0; offset < bytes.Length; offset += 4096)
        {
            await Task.Yield();
            yield return bytes.AsMemory(offset, Math.Min(4096, bytes.Length - offset));
        }
    }

    internal static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}
