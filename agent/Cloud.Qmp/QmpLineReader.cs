namespace Cloud.Qmp;

/// <summary>
/// Splits a byte stream into newline-terminated messages, refusing any message longer than the
/// limit instead of buffering without bound (a broken or hostile peer must not exhaust memory).
/// </summary>
internal sealed class QmpLineReader(Stream stream, int maxMessageBytes)
{
    private byte[] _buffer = new byte[Math.Min(64 * 1024, maxMessageBytes + 1)];
    private int _start;
    private int _end;

    /// <summary>The next message without its line terminator, or null at end of stream.</summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadLineAsync(CancellationToken cancellationToken)
    {
        var scanFrom = _start;
        while (true)
        {
            var newline = Array.IndexOf(_buffer, (byte)'\n', scanFrom, _end - scanFrom);
            if (newline >= 0)
            {
                var line = _buffer.AsMemory(_start, newline - _start);
                _start = newline + 1;
                if (line.Length > maxMessageBytes)
                {
                    throw new QmpProtocolException($"QMP message of {line.Length} bytes exceeds the limit of {maxMessageBytes} bytes.");
                }
                // Copy out: the buffer is reused by the next read.
                return TrimCarriageReturn(line).ToArray();
            }
            scanFrom = _end;
            if (_end - _start > maxMessageBytes)
            {
                throw new QmpProtocolException($"QMP message exceeds the limit of {maxMessageBytes} bytes.");
            }
            if (_end == _buffer.Length)
            {
                Compact(ref scanFrom);
            }
            var read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                if (_end > _start)
                {
                    throw new QmpProtocolException("QMP connection closed in the middle of a message.");
                }
                return null;
            }
            _end += read;
        }
    }

    private void Compact(ref int scanFrom)
    {
        var pending = _end - _start;
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, pending);
        }
        else
        {
            // pending <= maxMessageBytes here (checked by the caller), so the new size is always larger.
            var grown = new byte[(int)Math.Min((long)_buffer.Length * 2, (long)maxMessageBytes + 2)];
            Buffer.BlockCopy(_buffer, 0, grown, 0, pending);
            _buffer = grown;
        }
        scanFrom -= _start;
        _start = 0;
        _end = pending;
    }

    private static ReadOnlyMemory<byte> TrimCarriageReturn(ReadOnlyMemory<byte> line)
        => line.Length > 0 && line.Span[^1] == (byte)'\r' ? line[..^1] : line;
}
