using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Images;

/// <summary>What an upload brought: its size, its SHA-256, and what its header says.</summary>
internal sealed record ReceivedUpload(long Bytes, string Sha256, bool TooLarge, DiskInspection Inspection);

/// <summary>
/// The controller's image store: one file per ACTIVE image, named by its id, under
/// Images:StorePath. Uploads stream into a staging file next to it (never into memory) and are
/// renamed into place, so a reader never sees a half-written image.
/// </summary>
internal sealed class ImageFiles(IOptions<ImageOptions> options)
{
    private const int BufferBytes = 1 << 16;
    private const string StagingPrefix = ".upload-";

    private string Root => Path.GetFullPath(options.Value.StorePath);

    public string PathOf(string imageId) => Path.Combine(Root, imageId);

    public string StagingPath(string imageId, Guid uploadId) => Path.Combine(Root, $"{StagingPrefix}{imageId}-{uploadId:N}");

    /// <summary>
    /// Copies <paramref name="body"/> into <paramref name="path"/>, hashing as it goes, and stops
    /// reading once more than <paramref name="maxBytes"/> came (the rest is never stored).
    /// </summary>
    public async Task<ReceivedUpload> ReceiveAsync(string path, Stream body, string format, long maxBytes, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Root);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[BufferBytes];
        var header = new byte[DiskFormatInspector.HeaderBytes];
        var headerLength = 0;
        long total = 0;
        await using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferBytes, useAsync: true))
        {
            int read;
            while ((read = await body.ReadAsync(buffer, cancellationToken)) > 0)
            {
                total += read;
                if (total > maxBytes)
                {
                    return new ReceivedUpload(total, "", TooLarge: true, new DiskInspection(null, 0));
                }
                if (headerLength < header.Length)
                {
                    var take = Math.Min(read, header.Length - headerLength);
                    buffer.AsSpan(0, take).CopyTo(header.AsSpan(headerLength));
                    headerLength += take;
                }
                hash.AppendData(buffer, 0, read);
                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }
            await file.FlushAsync(cancellationToken);
        }
        var trailer = await ReadTailAsync(path, total, cancellationToken);
        var inspection = total == 0
            ? new DiskInspection("The upload is empty.", 0)
            : DiskFormatInspector.Inspect(format, header.AsSpan(0, headerLength), trailer, total);
        return new ReceivedUpload(total, Convert.ToHexStringLower(hash.GetHashAndReset()), TooLarge: false, inspection);
    }

    /// <summary>The file's last bytes, where a fixed VHD keeps its only footer.</summary>
    private static async Task<byte[]> ReadTailAsync(string path, long total, CancellationToken cancellationToken)
    {
        var tail = new byte[(int)Math.Min(total, DiskFormatInspector.TrailerBytes)];
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, useAsync: true);
        file.Position = total - tail.Length;
        await file.ReadExactlyAsync(tail, cancellationToken);
        return tail;
    }

    /// <summary>Makes a checked staging file the image's file.</summary>
    public void Publish(string stagingPath, string imageId) => File.Move(stagingPath, PathOf(imageId), overwrite: true);

    public void Delete(string imageId) => File.Delete(PathOf(imageId));

    /// <summary>Removes a file whose image is not ACTIVE (an upload that lost a race with a delete).</summary>
    public void DeleteUnlessActive(string imageId, string? state)
    {
        if (state != Data.ImageStates.Active)
        {
            Delete(imageId);
        }
    }

    public FileStream OpenRead(string imageId)
        => new(PathOf(imageId), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, BufferBytes, useAsync: true);
}
