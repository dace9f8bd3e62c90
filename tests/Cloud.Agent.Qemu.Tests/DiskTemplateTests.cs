namespace Cloud.Agent.Qemu.Tests;

/// <summary>New disks are copies of a template qemu-img made once; they must be what qemu-img would have made.</summary>
public sealed class DiskTemplateTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "cqt-tpl-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly QemuImg _qemuImg = new("qemu-img");

    [Fact]
    public async Task CreateBlank_TwiceTheSameSize_CopiesOneTemplate_WithTheSizeAsked()
    {
        var templates = new DiskTemplates(Path.Combine(_root, "templates"), _qemuImg);
        Directory.CreateDirectory(_root);

        await templates.CreateBlankAsync(Path.Combine(_root, "a.qcow2"), 1L << 30, CancellationToken.None);
        await templates.CreateBlankAsync(Path.Combine(_root, "b.qcow2"), 1L << 30, CancellationToken.None);
        await templates.CreateBlankAsync(Path.Combine(_root, "c.qcow2"), 2L << 30, CancellationToken.None);
        await _qemuImg.CreateBlankAsync(Path.Combine(_root, "direct.qcow2"), 1L << 30, CancellationToken.None);

        Assert.Equal(2, Directory.GetFiles(Path.Combine(_root, "templates")).Length);
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(_root, "direct.qcow2")), await File.ReadAllBytesAsync(Path.Combine(_root, "b.qcow2")));
        Assert.Equal(1L << 30, (await _qemuImg.InfoAsync(Path.Combine(_root, "a.qcow2"), "qcow2", forceShare: false, CancellationToken.None)).VirtualSize);
        Assert.Equal(2L << 30, (await _qemuImg.InfoAsync(Path.Combine(_root, "c.qcow2"), "qcow2", forceShare: false, CancellationToken.None)).VirtualSize);
        await Assert.ThrowsAsync<IOException>(() => templates.CreateBlankAsync(Path.Combine(_root, "a.qcow2"), 1L << 30, CancellationToken.None));
    }

    [Fact]
    public async Task CreateOverlay_KeepsTheBackingFileOfEachImage()
    {
        var templates = new DiskTemplates(Path.Combine(_root, "templates"), _qemuImg);
        Directory.CreateDirectory(_root);
        await _qemuImg.CreateBlankAsync(Path.Combine(_root, "base1.qcow2"), 1L << 30, CancellationToken.None);
        await _qemuImg.CreateBlankAsync(Path.Combine(_root, "base2.qcow2"), 1L << 30, CancellationToken.None);

        await templates.CreateOverlayAsync(Path.Combine(_root, "o1.qcow2"), Path.Combine(_root, "base1.qcow2"), "qcow2", 1L << 30, CancellationToken.None);
        await templates.CreateOverlayAsync(Path.Combine(_root, "o2.qcow2"), Path.Combine(_root, "base2.qcow2"), "qcow2", 1L << 30, CancellationToken.None);

        Assert.Equal(Path.Combine(_root, "base1.qcow2"), (await _qemuImg.InfoAsync(Path.Combine(_root, "o1.qcow2"), "qcow2", forceShare: false, CancellationToken.None)).BackingFile);
        Assert.Equal(Path.Combine(_root, "base2.qcow2"), (await _qemuImg.InfoAsync(Path.Combine(_root, "o2.qcow2"), "qcow2", forceShare: false, CancellationToken.None)).BackingFile);
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }
}
