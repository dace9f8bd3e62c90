using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;

namespace Cloud.Grpc.Benchmarks;

/// <summary>
/// Server-streaming throughput: ReadImage, the call a node uses to pull an image from a peer's
/// store, streams a stored file as 1 MiB FileChunk messages (the same sender as ReadSnapshotFile,
/// which a move uses for snapshots).
/// </summary>
/// <remarks>
/// The fake backend cannot serve it: it keeps no image bytes (its image target's OpenRead answers
/// NotFound) and no snapshot files, and its only other long stream, WatchEvents, carries events no
/// faster than unary calls cause them. So this figure comes from a second agent process, the same
/// binary on the QEMU backend with no guest at all: a raw image is put in its store by hand (a
/// manifest and the disk file, as an operator seeds an image), and ReadImage only opens that file.
/// With 1 MiB messages, messages/s is close to MiB/s: this measures bulk transfer (copies, framing,
/// HTTP/2 flow control), not per-message cost, which the unary figures show.
/// </remarks>
internal static class StreamingBenchmark
{
    private const string ImageId = "bench-image";

    public static async Task RunAsync(BenchmarkOptions options, Reporter report, CancellationToken cancellationToken)
    {
        var root = Path.Combine(Path.GetTempPath(), "cgb-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var size = await SeedImageAsync(Path.Combine(root, "images", ImageId), options.ImageMb, cancellationToken);
            await using var agent = await AgentProcess.StartQemuAsync("127.0.0.3", root, cancellationToken);
            // One image not counted: code compiled, the file in the page cache, the connection's windows grown.
            await ReadWholeAsync(agent.Client, size, cancellationToken);
            // Each image is timed alone and the median stream is reported, so that a burst of
            // other work on the machine during one stream moves the figure less.
            var streams = Math.Max(1, (int)Math.Ceiling((double)options.StreamMb / options.ImageMb));
            var messagesPerSecond = new List<double>();
            var bytesPerSecond = new List<double>();
            for (var i = 0; i < streams; i++)
            {
                var started = Stopwatch.GetTimestamp();
                var (messages, bytes) = await ReadWholeAsync(agent.Client, size, cancellationToken);
                var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                messagesPerSecond.Add(messages / seconds);
                bytesPerSecond.Add(bytes / seconds);
            }
            report.Add("grpc.stream.msgs_per_s", Percentiles.Median(messagesPerSecond), "msgs/s");
            report.Add("grpc.stream.mb_per_s", Percentiles.Median(bytesPerSecond) / 1048576.0, "MB/s");
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    private static async Task<(long Messages, long Bytes)> ReadWholeAsync(AgentClient client, long size, CancellationToken cancellationToken)
    {
        var (messages, bytes) = await client.ReadImageAsync(ImageId, cancellationToken);
        return bytes == size ? (messages, bytes) : throw new InvalidOperationException($"ReadImage sent {bytes} bytes of a {size}-byte image.");
    }

    /// <summary>
    /// Writes images/ID/disk.raw (random bytes) and its manifest.json as the QEMU backend's image
    /// store lays them out (QemuImageStore, ImageManifest); the image's size in bytes.
    /// </summary>
    private static async Task<long> SeedImageAsync(string directory, int mib, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        var block = new byte[1024 * 1024];
        RandomNumberGenerator.Fill(block);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using (var disk = File.Create(Path.Combine(directory, "disk.raw")))
        {
            for (var i = 0; i < mib; i++)
            {
                hash.AppendData(block);
                await disk.WriteAsync(block, cancellationToken);
            }
        }
        long size = (long)mib * block.Length;
        var manifest = string.Create(CultureInfo.InvariantCulture, $$"""
            {
              "version": 1,
              "imageId": "{{ImageId}}",
              "kind": "Disk",
              "format": "raw",
              "sha256": "{{Convert.ToHexStringLower(hash.GetHashAndReset())}}",
              "sizeBytes": {{size}},
              "virtualSizeBytes": {{size}},
              "createdAt": "{{DateTimeOffset.UtcNow:O}}"
            }
            """);
        await File.WriteAllTextAsync(Path.Combine(directory, "manifest.json"), manifest, cancellationToken);
        return size;
    }
}
