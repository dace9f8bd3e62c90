using System.Buffers;
using System.IO.Pipelines;
using Cloud.Grpc.Tests.Echo;
using Cloud.Grpc.Wire;
using Google.Protobuf;

namespace Cloud.Grpc.Tests.Wire;

public class MessageFramingTests
{
    private static readonly FrameReaderOptions Defaults = new(4 * 1024 * 1024, null, StatusCode.Unimplemented);

    [Fact]
    public void Frame_WritesFlagLengthAndMessage()
    {
        var message = new EchoResponse { Message = "hi" };
        var frame = MessageFraming.Frame(message, maxMessageSize: null);
        var expectedBody = message.ToByteArray();
        Assert.Equal(new byte[] { 0, 0, 0, 0, (byte)expectedBody.Length }, frame[..5]);
        Assert.Equal(expectedBody, frame[5..]);
    }

    [Fact]
    public void Frame_OverSendLimit_IsResourceExhausted()
    {
        var message = new EchoResponse { Payload = ByteString.CopyFrom(new byte[100]) };
        var ex = Assert.Throws<RpcException>(() => MessageFraming.Frame(message, maxMessageSize: 50));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
    }

    [Fact]
    public void TryRead_TwoMessagesSplitAcrossSegments()
    {
        var first = MessageFraming.Frame(new EchoResponse { Message = "one" }, null);
        var second = MessageFraming.Frame(new EchoResponse { Message = "two" }, null);
        var all = first.Concat(second).ToArray();
        // One byte per segment: frame boundaries must not depend on how the bytes arrived.
        var buffer = Segmented(all, 1);

        Assert.Equal(FrameReadResult.Message, MessageFraming.TryRead(ref buffer, false, Defaults, out var m1));
        Assert.Equal("one", EchoResponse.Parser.ParseFrom(m1).Message);
        Assert.Equal(FrameReadResult.Message, MessageFraming.TryRead(ref buffer, false, Defaults, out var m2));
        Assert.Equal("two", EchoResponse.Parser.ParseFrom(m2).Message);
        Assert.Equal(FrameReadResult.NeedMoreData, MessageFraming.TryRead(ref buffer, false, Defaults, out _));
        Assert.Equal(FrameReadResult.EndOfStream, MessageFraming.TryRead(ref buffer, true, Defaults, out _));
    }

    [Fact]
    public void TryRead_EmptyMessage()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 0, 0, 0, 0, 0 });
        Assert.Equal(FrameReadResult.Message, MessageFraming.TryRead(ref buffer, true, Defaults, out var message));
        Assert.True(message.IsEmpty);
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void TryRead_PartialFrameWhileStreamOpen_NeedsMoreData()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 0, 0, 0, 0, 10, 1, 2, 3 });
        Assert.Equal(FrameReadResult.NeedMoreData, MessageFraming.TryRead(ref buffer, false, Defaults, out _));
        Assert.Equal(8, buffer.Length);
    }

    [Fact]
    public void TryRead_FrameThatClaimsMoreBytesThanSent_IsInternal()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 0, 0, 0, 0, 100, 1, 2, 3 });
        var ex = Assert.Throws<RpcException>(() => MessageFraming.TryRead(ref buffer, true, Defaults, out _));
        Assert.Equal(StatusCode.Internal, ex.StatusCode);
        Assert.Contains("declares 100 bytes", ex.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("ended after 3", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRead_TruncatedHeader_IsInternal()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 0, 0, 0 });
        var ex = Assert.Throws<RpcException>(() => MessageFraming.TryRead(ref buffer, true, Defaults, out _));
        Assert.Equal(StatusCode.Internal, ex.StatusCode);
        Assert.Contains("message header", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRead_OverLimit_FailsOnTheHeaderAlone()
    {
        // Only the header has arrived: the limit must trip before buffering the body.
        var buffer = new ReadOnlySequence<byte>(new byte[] { 0, 0, 0, 4, 1 });
        var ex = Assert.Throws<RpcException>(() => MessageFraming.TryRead(ref buffer, false, Defaults with { MaxMessageSize = 1024 }, out _));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
    }

    [Fact]
    public void TryRead_LengthBeyondInt32_IsResourceExhaustedEvenWithoutLimit()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 0, 0xFF, 0xFF, 0xFF, 0xFF });
        var ex = Assert.Throws<RpcException>(() => MessageFraming.TryRead(ref buffer, false, Defaults with { MaxMessageSize = null }, out _));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
    }

    [Fact]
    public void TryRead_CompressedWithoutEncoding_IsInternal()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 1, 0, 0, 0, 0 });
        var ex = Assert.Throws<RpcException>(() => MessageFraming.TryRead(ref buffer, true, Defaults, out _));
        Assert.Equal(StatusCode.Internal, ex.StatusCode);
    }

    [Fact]
    public void TryRead_CompressedWithUnsupportedEncoding_UsesTheSidesCode()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 1, 0, 0, 0, 0 });
        var ex = Assert.Throws<RpcException>(() => MessageFraming.TryRead(ref buffer, true, Defaults with { MessageEncoding = "gzip" }, out _));
        Assert.Equal(StatusCode.Unimplemented, ex.StatusCode);
        Assert.Contains("gzip", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRead_InvalidFlag_IsInternal()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 7, 0, 0, 0, 0 });
        var ex = Assert.Throws<RpcException>(() => MessageFraming.TryRead(ref buffer, true, Defaults, out _));
        Assert.Equal(StatusCode.Internal, ex.StatusCode);
    }

    [Fact]
    public async Task ReadMessageAsync_MalformedProtobuf_IsInternal()
    {
        var pipe = new Pipe();
        // Field 1 (string) claiming 50 bytes, with only 2 present.
        await pipe.Writer.WriteAsync(new byte[] { 0, 0, 0, 0, 4, 0x0A, 50, 1, 2 });
        await pipe.Writer.CompleteAsync();
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await MessageFraming.ReadMessageAsync(pipe.Reader, EchoResponse.Parser, Defaults, CancellationToken.None));
        Assert.Equal(StatusCode.Internal, ex.StatusCode);
        Assert.Contains("EchoResponse", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadMessageAsync_BytesArrivingInPieces()
    {
        var pipe = new Pipe();
        var frame = MessageFraming.Frame(new EchoResponse { Message = "slow" }, null);
        var read = MessageFraming.ReadMessageAsync(pipe.Reader, EchoResponse.Parser, Defaults, CancellationToken.None).AsTask();
        foreach (var b in frame)
        {
            await pipe.Writer.WriteAsync(new[] { b });
        }
        var (hasMessage, message) = await read;
        Assert.True(hasMessage);
        Assert.Equal("slow", message.Message);
        await pipe.Writer.CompleteAsync();
        var (more, _) = await MessageFraming.ReadMessageAsync(pipe.Reader, EchoResponse.Parser, Defaults, CancellationToken.None);
        Assert.False(more);
    }

    private static ReadOnlySequence<byte> Segmented(byte[] data, int segmentSize)
    {
        Segment? first = null;
        Segment? last = null;
        for (var i = 0; i < data.Length; i += segmentSize)
        {
            var memory = data.AsMemory(i, Math.Min(segmentSize, data.Length - i));
            if (first is null)
            {
                first = last = new Segment(memory, 0);
            }
            else
            {
                last = last!.Append(memory);
            }
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
