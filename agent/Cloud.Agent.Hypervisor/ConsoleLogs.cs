using Cloud.Contracts.Agent.V1;
using Google.Protobuf;

namespace Cloud.Agent.Hypervisor;

/// <summary>The tail of a console log, as GetConsoleOutput returns it.</summary>
public static class ConsoleLogs
{
    /// <summary>The last <paramref name="maxBytes"/> bytes of <paramref name="log"/>.</summary>
    public static ConsoleOutput Tail(ReadOnlySpan<byte> log, int maxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBytes);
        var start = Math.Max(0, log.Length - maxBytes);
        return new ConsoleOutput { Data = ByteString.CopyFrom(log[start..]), Start = start, TotalBytes = log.Length };
    }

    /// <summary>
    /// The last <paramref name="maxBytes"/> bytes of the log file at <paramref name="path"/>, read
    /// while the hypervisor may still be appending to it: what the file held when it was opened.
    /// A missing file (a guest that never ran) is an empty log.
    /// </summary>
    public static async Task<ConsoleOutput> ReadTailAsync(string path, int maxBytes, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBytes);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 1, useAsync: true);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return new ConsoleOutput();
        }
        await using (stream.ConfigureAwait(false))
        {
            var total = stream.Length;
            var start = Math.Max(0, total - maxBytes);
            var buffer = new byte[total - start];
            stream.Seek(start, SeekOrigin.Begin);
            var read = 0;
            while (read < buffer.Length)
            {
                var n = await stream.ReadAsync(buffer.AsMemory(read), cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    // Truncated under us (the guest was started afresh): what was read is the answer.
                    break;
                }
                read += n;
            }
            return new ConsoleOutput { Data = ByteString.CopyFrom(buffer, 0, read), Start = start, TotalBytes = start + read };
        }
    }
}
