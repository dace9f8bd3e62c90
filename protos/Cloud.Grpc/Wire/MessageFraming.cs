using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Google.Protobuf;

namespace Cloud.Grpc.Wire;

/// <summary>What one attempt to take a message off the front of a buffer found.</summary>
internal enum FrameReadResult
{
    /// <summary>A whole message was taken; the buffer now starts after it.</summary>
    Message,
    /// <summary>The buffer holds part of a message; read more and try again.</summary>
    NeedMoreData,
    /// <summary>The stream ended cleanly between messages.</summary>
    EndOfStream,
}

/// <summary>How a side of the call reads messages: its size limit and the negotiated encoding.</summary>
/// <param name="MaxMessageSize">Largest accepted message in bytes; null for no limit.</param>
/// <param name="MessageEncoding">The peer's grpc-encoding header, if any.</param>
/// <param name="UnsupportedEncodingCode">
/// Status for a compressed message in an encoding this side lacks: UNIMPLEMENTED on a server
/// (the client chose an algorithm the server does not support), INTERNAL on a client (the
/// server compressed with an algorithm the client never offered).
/// </param>
internal readonly record struct FrameReaderOptions(int? MaxMessageSize, string? MessageEncoding, StatusCode UnsupportedEncodingCode);

/// <summary>
/// The Length-Prefixed-Message of gRPC: a compressed flag byte, a 4-byte big-endian length,
/// then the message. Errors are RpcExceptions carrying the status the specification asks for.
/// </summary>
internal static class MessageFraming
{
    public const int HeaderLength = 5;

    /// <summary>Serializes a message with its prefix, refusing it when it exceeds the send limit.</summary>
    public static byte[] Frame(IMessage message, int? maxMessageSize)
    {
        ArgumentNullException.ThrowIfNull(message);
        var size = message.CalculateSize();
        if (size > maxMessageSize)
        {
            throw new RpcException(StatusCode.ResourceExhausted,
                $"Sending message exceeds the maximum configured message size ({size} > {maxMessageSize} bytes).");
        }
        var frame = new byte[HeaderLength + size];
        WriteHeader(frame, size);
        message.WriteTo(frame.AsSpan(HeaderLength));
        return frame;
    }

    public static void WriteHeader(Span<byte> destination, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        destination[0] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(destination[1..], (uint)length);
    }

    /// <summary>
    /// Takes one message off the front of <paramref name="buffer"/>. On success the buffer is
    /// advanced past it and <paramref name="message"/> is a slice of the original buffer.
    /// <paramref name="isCompleted"/> is true when no more bytes will ever arrive.
    /// </summary>
    public static FrameReadResult TryRead(ref ReadOnlySequence<byte> buffer, bool isCompleted, in FrameReaderOptions options, out ReadOnlySequence<byte> message)
    {
        message = default;
        if (buffer.Length < HeaderLength)
        {
            if (!isCompleted)
            {
                return FrameReadResult.NeedMoreData;
            }
            if (buffer.IsEmpty)
            {
                return FrameReadResult.EndOfStream;
            }
            throw new RpcException(StatusCode.Internal,
                $"Incomplete message: the stream ended {buffer.Length} bytes into a {HeaderLength}-byte message header.");
        }

        Span<byte> header = stackalloc byte[HeaderLength];
        buffer.Slice(0, HeaderLength).CopyTo(header);
        var compressed = header[0];
        var length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);

        if (length > (uint)(options.MaxMessageSize ?? int.MaxValue))
        {
            throw new RpcException(StatusCode.ResourceExhausted,
                $"Received message exceeds the maximum configured message size ({length} > {options.MaxMessageSize ?? int.MaxValue} bytes).");
        }
        switch (compressed)
        {
            case 0:
                break;
            case 1 when options.MessageEncoding is null || options.MessageEncoding == GrpcProtocol.IdentityEncoding:
                throw new RpcException(StatusCode.Internal,
                    "A message is flagged as compressed but the call declares no grpc-encoding.");
            case 1:
                throw new RpcException(options.UnsupportedEncodingCode,
                    $"Message compressed with grpc-encoding '{options.MessageEncoding}', which is not supported; supported: {GrpcProtocol.IdentityEncoding}.");
            default:
                throw new RpcException(StatusCode.Internal, $"Invalid compressed-flag byte {compressed} in a message header.");
        }

        var total = HeaderLength + (long)length;
        if (buffer.Length < total)
        {
            if (!isCompleted)
            {
                return FrameReadResult.NeedMoreData;
            }
            throw new RpcException(StatusCode.Internal,
                $"Incomplete message: the header declares {length} bytes but the stream ended after {buffer.Length - HeaderLength}.");
        }

        message = buffer.Slice(HeaderLength, length);
        buffer = buffer.Slice(total);
        return FrameReadResult.Message;
    }

    /// <summary>
    /// Reads and parses the next message from a pipe; returns false at a clean end of stream.
    /// </summary>
    public static async ValueTask<(bool HasMessage, T Message)> ReadMessageAsync<T>(
        PipeReader reader, MessageParser<T> parser, FrameReaderOptions options, CancellationToken cancellationToken)
        where T : IMessage<T>
    {
        while (true)
        {
            var read = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = read.Buffer;
            FrameReadResult result;
            ReadOnlySequence<byte> payload;
            try
            {
                result = TryRead(ref buffer, read.IsCompleted, options, out payload);
            }
            catch
            {
                reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
                throw;
            }

            switch (result)
            {
                case FrameReadResult.Message:
                    try
                    {
                        return (true, Parse(parser, payload));
                    }
                    finally
                    {
                        reader.AdvanceTo(buffer.Start);
                    }
                case FrameReadResult.EndOfStream:
                    reader.AdvanceTo(buffer.End);
                    return (false, default!);
                default:
                    // Everything so far was examined; wait for more bytes.
                    reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
                    break;
            }
        }
    }

    private static T Parse<T>(MessageParser<T> parser, ReadOnlySequence<byte> payload)
        where T : IMessage<T>
    {
        try
        {
            return parser.ParseFrom(payload);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new RpcException(StatusCode.Internal, $"Failed to parse a {typeof(T).Name} message: {ex.Message}");
        }
    }
}
