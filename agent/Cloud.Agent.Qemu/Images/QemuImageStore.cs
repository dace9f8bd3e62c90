using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Cloud.Agent.Hypervisor;

namespace Cloud.Agent.Qemu;

/// <summary>
/// The node's local images under DataDirectory/images/&lt;id&gt;/: a manifest and either a disk
/// (raw or qcow2) or a kernel with optional initrd. An entry appears atomically (built in a
/// temporary folder, then renamed), so a half-written image is never visible.
/// </summary>
public sealed class QemuImageStore
{
    internal const string DiskFileStem = "disk";
    internal const string KernelFile = "vmlinuz";
    internal const string InitrdFile = "initrd.img";
    private const string ManifestFile = "manifest.json";
    private const string UsedAtFile = "used-at";

    private readonly QemuImg _qemuImg;
    private readonly TimeProvider _time;
    private readonly Func<string, CancellationToken, Task<int?>>? _openToProbe;
    private readonly Func<string, CancellationToken, Task>? _seal;
    // Marking an image used and removing it as unused exclude each other, so that a pull that
    // found the image present never answers for one that is being removed.
    private readonly Lock _usage = new();

    // openToProbe makes a staging folder readable by the unprivileged id incoming images are
    // inspected as and returns that id (null when the agent is not root: no drop); seal makes a
    // finished image's folder root's alone (QEMU opens its backing chain before it drops to the
    // guest's uid, so no guest needs to read any image).
    internal QemuImageStore(string root, QemuImg qemuImg, TimeProvider time, Func<string, CancellationToken, Task<int?>>? openToProbe, Func<string, CancellationToken, Task>? seal)
    {
        _openToProbe = openToProbe;
        _seal = seal;
        Root = root;
        _qemuImg = qemuImg;
        _time = time;
        Directory.CreateDirectory(root);
        if (!OperatingSystem.IsWindows())
        {
            // Guests may not list which images the node holds; the probe id must traverse to a staging folder.
            File.SetUnixFileMode(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        }
    }

    public string Root { get; }

    /// <summary>
    /// Copies a raw or qcow2 disk image into the store, checking its SHA-256 (hex) on the way.
    /// qcow2 images that refer to other files (backing or data files) are refused: such a
    /// reference could make QEMU read any file on the host.
    /// </summary>
    public async Task<ImageInfo> ImportAsync(string imageId, string sourcePath, string sha256, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateId(imageId, "Image id");
        ArgumentException.ThrowIfNullOrEmpty(sourcePath);
        if (sha256 is not { Length: 64 } || !sha256.All(Uri.IsHexDigit))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "sha256 must be 64 hexadecimal digits.");
        }
        if (!File.Exists(sourcePath))
        {
            throw new HypervisorException(HypervisorError.NotFound, $"Image source '{sourcePath}' does not exist.");
        }
        return await BuildAsync(imageId, async (staging, ct) =>
        {
            var tmp = Path.Combine(staging, "incoming");
            string actual;
            var source = new FileStream(sourcePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
            await using (source.ConfigureAwait(false))
            {
                var target = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
                await using (target.ConfigureAwait(false))
                {
                    actual = await CopyHashingAsync(source, target, ct).ConfigureAwait(false);
                }
            }
            if (!string.Equals(actual, sha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new HypervisorException(HypervisorError.InvalidArgument, $"Image {imageId} has SHA-256 {actual}, not the expected {sha256.ToLowerInvariant()}.");
            }
            var info = await CheckDiskAsync(tmp, await HeaderFormatAsync(tmp, ct).ConfigureAwait(false), ct).ConfigureAwait(false);
            File.Move(tmp, Path.Combine(staging, DiskFileStem + "." + info.Format));
            return new ImageManifest
            {
                Kind = ImageKind.Disk,
                Format = info.Format,
                Sha256 = actual,
                SizeBytes = new FileInfo(Path.Combine(staging, DiskFileStem + "." + info.Format)).Length,
                VirtualSizeBytes = info.VirtualSize,
            };
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Adds a raw or qcow2 disk that arrives as a stream of chunks (a pull from the controller).
    /// The bytes must be exactly <paramref name="sizeBytes"/> long, have the SHA-256
    /// <paramref name="sha256"/> and be a disk of <paramref name="format"/> with no backing or
    /// data file; otherwise nothing enters the store.
    /// </summary>
    public async Task<ImageInfo> ImportChunksAsync(string imageId, string format, string sha256, long sizeBytes, IAsyncEnumerable<ReadOnlyMemory<byte>> chunks, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateId(imageId, "Image id");
        ArgumentNullException.ThrowIfNull(chunks);
        return await BuildAsync(imageId, async (staging, ct) =>
        {
            var tmp = Path.Combine(staging, "incoming");
            var target = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
            await using (target.ConfigureAwait(false))
            {
                await ImageTransfer.CopyVerifiedAsync(imageId, chunks, target, sha256, sizeBytes, ct).ConfigureAwait(false);
            }
            // Opened only as the declared format: a raw image that is really a VMDK descriptor stays
            // raw bytes, and the host files it names are never opened.
            if (await HeaderFormatAsync(tmp, ct).ConfigureAwait(false) is var found && found != format)
            {
                throw new HypervisorException(HypervisorError.InvalidArgument, $"Image {imageId} is {found}, not the expected {format}.");
            }
            var info = await CheckDiskAsync(tmp, format, ct).ConfigureAwait(false);
            File.Move(tmp, Path.Combine(staging, DiskFileStem + "." + info.Format));
            return new ImageManifest { Kind = ImageKind.Disk, Format = info.Format, Sha256 = sha256, SizeBytes = sizeBytes, VirtualSizeBytes = info.VirtualSize, Pulled = true };
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Adds a directly booted kernel (with an optional initrd and kernel command line).</summary>
    public async Task<ImageInfo> ImportKernelAsync(string imageId, string kernelPath, string? initrdPath, string append, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateId(imageId, "Image id");
        ArgumentNullException.ThrowIfNull(append);
        if (append.Length > 2048 || append.Any(char.IsControl))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "The kernel command line must be at most 2048 printable characters.");
        }
        foreach (var path in new[] { kernelPath, initrdPath })
        {
            if (path is not null && !File.Exists(path))
            {
                throw new HypervisorException(HypervisorError.NotFound, $"'{path}' does not exist.");
            }
        }
        return await BuildAsync(imageId, async (staging, ct) =>
        {
            var kernel = Path.Combine(staging, KernelFile);
            File.Copy(kernelPath, kernel);
            if (initrdPath is not null)
            {
                File.Copy(initrdPath, Path.Combine(staging, InitrdFile));
            }
            string hash;
            var stream = File.OpenRead(kernel);
            await using (stream.ConfigureAwait(false))
            {
                hash = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false));
            }
            return new ImageManifest
            {
                Kind = ImageKind.Kernel,
                Format = "kernel",
                Sha256 = hash,
                SizeBytes = new FileInfo(kernel).Length + (initrdPath is null ? 0 : new FileInfo(initrdPath).Length),
                HasInitrd = initrdPath is not null,
                KernelAppend = append,
            };
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Adds a qcow2 that <paramref name="write"/> produces at the path it is given (a snapshot export).</summary>
    internal Task<ImageInfo> AddGeneratedAsync(string imageId, Func<string, CancellationToken, Task> write, CancellationToken cancellationToken)
        => BuildAsync(imageId, async (staging, ct) =>
        {
            var path = Path.Combine(staging, DiskFileStem + ".qcow2");
            await write(path, ct).ConfigureAwait(false);
            var info = await CheckDiskAsync(path, "qcow2", ct).ConfigureAwait(false);
            string hash;
            var stream = File.OpenRead(path);
            await using (stream.ConfigureAwait(false))
            {
                hash = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false));
            }
            return new ImageManifest { Kind = ImageKind.Disk, Format = info.Format, Sha256 = hash, SizeBytes = new FileInfo(path).Length, VirtualSizeBytes = info.VirtualSize, Exported = true };
        }, cancellationToken);

    public ImageInfo? Find(string imageId)
    {
        if (!VmSpecValidator.IsSafeId(imageId))
        {
            return null;
        }
        var manifest = ReadManifest(Path.Combine(Root, imageId));
        return manifest is null ? null : ToInfo(manifest);
    }

    public IReadOnlyList<ImageInfo> List()
        => [.. Directory.EnumerateDirectories(Root)
            .Where(d => VmSpecValidator.IsSafeId(Path.GetFileName(d)))
            .Select(ReadManifest)
            .OfType<ImageManifest>()
            .Select(ToInfo)
            .OrderBy(i => i.ImageId, StringComparer.Ordinal)];

    /// <summary>Records that the image is wanted now (a pull that found it, a VM created or started from it); false when the store does not hold it.</summary>
    public bool MarkUsed(string imageId)
    {
        lock (_usage)
        {
            var dir = Path.Combine(Root, imageId);
            if (!VmSpecValidator.IsSafeId(imageId) || ReadManifest(dir) is null)
            {
                return false;
            }
            var file = Path.Combine(dir, UsedAtFile);
            File.WriteAllText(file + ".tmp", _time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture));
            File.Move(file + ".tmp", file, overwrite: true);
            return true;
        }
    }

    /// <summary>When the image was last marked used; its creation if never. An unreadable record counts as now: it keeps the image rather than lose it.</summary>
    public DateTimeOffset LastUsedAt(ImageInfo image)
    {
        var file = Path.Combine(Root, image.ImageId, UsedAtFile);
        if (!File.Exists(file))
        {
            return image.CreatedAt;
        }
        try
        {
            return DateTimeOffset.TryParseExact(File.ReadAllText(file).Trim(), "O", CultureInfo.InvariantCulture, DateTimeStyles.None, out var at) ? at : _time.GetUtcNow();
        }
        catch (IOException)
        {
            return _time.GetUtcNow();
        }
    }

    /// <summary>Removes the image if it was last used no later than <paramref name="cutoff"/>; whether it did.</summary>
    internal bool DeleteIfUnusedSince(ImageInfo image, DateTimeOffset cutoff)
    {
        lock (_usage)
        {
            if (LastUsedAt(image) > cutoff)
            {
                return false;
            }
            Delete(image.ImageId);
            return true;
        }
    }

    internal void Delete(string imageId)
    {
        VmSpecValidator.ValidateId(imageId, "Image id");
        var dir = Path.Combine(Root, imageId);
        // Rename first so that a crash mid-delete never leaves a half image under its id; under
        // the usage lock, so that a pull marking the image used sees it whole or not at all.
        var doomed = Path.Combine(Root, ".deleting-" + imageId + "-" + Guid.NewGuid().ToString("N")[..8]);
        lock (_usage)
        {
            if (!Directory.Exists(dir))
            {
                return;
            }
            Directory.Move(dir, doomed);
        }
        Directory.Delete(doomed, recursive: true);
    }

    /// <summary>A disk image's file, to be read by a node that pulls the image from here.</summary>
    public Stream OpenDisk(string imageId)
        => Find(imageId) is { Kind: ImageKind.Disk } image
            ? new FileStream(DiskPath(image), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, useAsync: true)
            : throw new HypervisorException(HypervisorError.NotFound, $"Image {imageId} is not a disk image in this node's store.");

    internal string DiskPath(ImageInfo image) => Path.Combine(Root, image.ImageId, DiskFileStem + "." + image.Format);

    internal string KernelPath(ImageInfo image) => Path.Combine(Root, image.ImageId, KernelFile);

    internal string? InitrdPath(ImageInfo image)
    {
        var path = Path.Combine(Root, image.ImageId, InitrdFile);
        return File.Exists(path) ? path : null;
    }

    private async Task<ImageInfo> BuildAsync(string imageId, Func<string, CancellationToken, Task<ImageManifest>> build, CancellationToken cancellationToken)
    {
        var final = Path.Combine(Root, imageId);
        if (Directory.Exists(final))
        {
            throw new HypervisorException(HypervisorError.AlreadyExists, $"Image {imageId} already exists on this node.");
        }
        var staging = Path.Combine(Root, ".staging-" + imageId + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(staging);
        try
        {
            var manifest = await build(staging, cancellationToken).ConfigureAwait(false);
            manifest.ImageId = imageId;
            manifest.CreatedAt = _time.GetUtcNow();
            await File.WriteAllTextAsync(Path.Combine(staging, ManifestFile), JsonSerializer.Serialize(manifest, QemuJsonContext.Default.ImageManifest), cancellationToken).ConfigureAwait(false);
            if (_seal is not null)
            {
                await _seal(staging, cancellationToken).ConfigureAwait(false);
            }
            try
            {
                Directory.Move(staging, final);
            }
            catch (IOException) when (Directory.Exists(final))
            {
                throw new HypervisorException(HypervisorError.AlreadyExists, $"Image {imageId} already exists on this node.");
            }
            return ToInfo(manifest);
        }
        catch (HypervisorToolException ex)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"Image {imageId} is not usable: {ex.Message}", ex);
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
    }

    /// <summary>
    /// qcow2 when the file starts with the qcow2 magic, raw otherwise: what the store will open
    /// it as. Read by the store itself, so that qemu-img never has to guess (probe) a format.
    /// </summary>
    private static ReadOnlySpan<byte> Qcow2Magic => [(byte)'Q', (byte)'F', (byte)'I', 0xfb];

    private static async Task<string> HeaderFormatAsync(string path, CancellationToken cancellationToken)
    {
        var magic = new byte[4];
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, useAsync: true);
        await using (file.ConfigureAwait(false))
        {
            var read = await file.ReadAtLeastAsync(magic, magic.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            return read == magic.Length && magic.AsSpan().SequenceEqual(Qcow2Magic) ? "qcow2" : "raw";
        }
    }

    private async Task<QemuImageInfo> CheckDiskAsync(string path, string format, CancellationToken cancellationToken)
    {
        var probeId = _openToProbe is null ? null : await _openToProbe(Path.GetDirectoryName(path)!, cancellationToken).ConfigureAwait(false);
        var info = await _qemuImg.ProbeAsync(path, format, probeId, cancellationToken).ConfigureAwait(false);
        if (info.Format is not ("raw" or "qcow2"))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"Image format '{info.Format}' is not supported; use raw or qcow2.");
        }
        if (info.BackingFile is not null || info.HasDataFile)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, "A qcow2 image that refers to a backing or data file cannot be imported; flatten it first (qemu-img convert).");
        }
        return info;
    }

    private static async Task<string> CopyHashingAsync(Stream source, Stream target, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 16];
        int read;
        while ((read = await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            hash.AppendData(buffer, 0, read);
            await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static ImageManifest? ReadManifest(string dir)
    {
        var path = Path.Combine(dir, ManifestFile);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            var manifest = JsonSerializer.Deserialize(File.ReadAllText(path), QemuJsonContext.Default.ImageManifest);
            // The folder name is the id; a manifest that disagrees (or a damaged one) is ignored.
            return manifest is not null && manifest.ImageId == Path.GetFileName(dir) && manifest.Format is "raw" or "qcow2" or "kernel" ? manifest : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static ImageInfo ToInfo(ImageManifest m)
        => new(m.ImageId, m.Kind, m.Format, m.Sha256, m.SizeBytes, m.VirtualSizeBytes, m.KernelAppend, m.CreatedAt) { Pulled = m.Pulled, Exported = m.Exported };
}
