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

    [Fact]
    public async Task A_raw_image_that_is_a_vmdk_descriptor_stays_raw_and_its_extent_is_never_opened()
    {
        await using var node = new TestNode();
        Directory.CreateDirectory(node.Root);
        // The host file the descriptor names.
        var extent = Path.Combine(node.Root, "host-secret.img");
        await File.WriteAllBytesAsync(extent, new byte[4 << 20]);
        // Padded to a whole sector, the unit qemu-img gives a raw disk's size in.
        var descriptor = System.Text.Encoding.ASCII.GetBytes((
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n" +
            $"RW 8192 FLAT \"{extent}\" 0\n\nddb.adapterType = \"ide\"\n").PadRight(512, '\n'));
        var local = Path.Combine(node.Root, "descriptor.raw");
        await File.WriteAllBytesAsync(local, descriptor);
        // The test's own check that the descriptor is one: probed (no -f), qemu-img follows it.
        var probedJson = await QemuImgJsonAsync("info", "--output=json", local);
        Assert.Equal("vmdk", QemuImg.ParseInfo(probedJson).Format);
        Assert.Contains(extent, probedJson, StringComparison.Ordinal);

        var pulled = await node.Hypervisor.Images.ImportChunksAsync("pulled", "raw", Sha256(descriptor), descriptor.Length, Chunks(descriptor), CancellationToken.None);
        var imported = await node.Hypervisor.Images.ImportAsync("by-hand", local, Sha256(descriptor), CancellationToken.None);

        foreach (var image in new[] { pulled, imported })
        {
            Assert.Equal(("raw", (long)descriptor.Length), (image.Format, image.VirtualSizeBytes));
            var storedJson = await QemuImgJsonAsync("info", "-f", "raw", "--output=json", node.Hypervisor.Images.DiskPath(image));
            var stored = QemuImg.ParseInfo(storedJson);
            Assert.Equal(("raw", (long)descriptor.Length), (stored.Format, stored.VirtualSize));
            Assert.DoesNotContain(extent, storedJson, StringComparison.Ordinal);
            Assert.Equal(descriptor, await File.ReadAllBytesAsync(node.Hypervisor.Images.DiskPath(image)));
        }
    }

    [Fact]
    public async Task A_raw_declared_image_that_is_qcow2_is_refused_by_its_header()
    {
        await using var node = new TestNode();
        var bytes = await Qcow2Async(node, backing: false);

        var error = await Assert.ThrowsAsync<HypervisorException>(() =>
            node.Hypervisor.Images.ImportChunksAsync("pulled", "raw", Sha256(bytes), bytes.Length, Chunks(bytes), CancellationToken.None));

        Assert.Contains("is qcow2, not the expected raw", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Incoming_images_are_inspected_as_the_unprivileged_user_when_the_agent_is_root()
    {
        await using var node = new TestNode();
        var bytes = new byte[1 << 20];
        bytes[0] = 1;

        // Inspected as the probe id of the guest id range (when root): the staging file must be readable by it.
        var image = await node.Hypervisor.Images.ImportChunksAsync("pulled", "raw", Sha256(bytes), bytes.Length, Chunks(bytes), CancellationToken.None);
        Assert.Equal(("raw", (long)bytes.Length), (image.Format, image.VirtualSizeBytes));

        if (Environment.IsPrivilegedProcess)
        {
            // A file only root may read: root's qemu-img opens it, the probe's cannot.
            var folder = Path.Combine(node.Root, "root-only");
            Directory.CreateDirectory(folder);
            File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var file = Path.Combine(folder, "disk.raw");
            await File.WriteAllBytesAsync(file, bytes);
            Assert.Equal("raw", (await _qemuImg.InfoAsync(file, "raw", forceShare: false, CancellationToken.None)).Format);
            var refused = await Assert.ThrowsAsync<HypervisorToolException>(() => _qemuImg.ProbeAsync(file, "raw", ProbeId(node), CancellationToken.None));
            Assert.Contains("Permission denied", refused.Message, StringComparison.Ordinal);
        }
    }

    private static int ProbeId(TestNode node)
    {
        Assert.True(GuestIdRange.TryParse(node.Options.GuestIdRange, out var range));
        return range.ProbeId;
    }

    private static async Task<string> QemuImgJsonAsync(params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo("qemu-img") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        using var process = System.Diagnostics.Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, stderr);
        return await stdout;
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
