using System.Security.Cryptography;
using Cloud.Agent.Hypervisor;

namespace Cloud.Agent.Qemu;

/// <summary>Checks an image transfer while it is written: its length and its SHA-256.</summary>
public static class ImageTransfer
{
    /// <summary>
    /// Writes <paramref name="chunks"/> to <paramref name="target"/> and throws InvalidArgument
    /// if they are not exactly <paramref name="sizeBytes"/> long with SHA-256
    /// <paramref name="sha256"/>. A transfer longer than announced is stopped at once.
    /// </summary>
    public static async Task CopyVerifiedAsync(string imageId, IAsyncEnumerable<ReadOnlyMemory<byte>> chunks, Stream target, string sha256, long sizeBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        ArgumentNullException.ThrowIfNull(target);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long total = 0;
        await foreach (var chunk in chunks.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            total += chunk.Length;
            if (total > sizeBytes)
            {
                throw new HypervisorException(HypervisorError.InvalidArgument, $"Image {imageId}: the transfer is longer than the expected {sizeBytes} bytes.");
            }
            hash.AppendData(chunk.Span);
            await target.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
        }
        if (total != sizeBytes)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"Image {imageId}: the transfer has {total} bytes, not the expected {sizeBytes}.");
        }
        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (!string.Equals(actual, sha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"Image {imageId}: the transfer has SHA-256 {actual}, not the expected {sha256}; it was discarded.");
        }
    }
}
