using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Cloud.Agent.Hypervisor;
using Cloud.Agent.Identity;
using Cloud.Agent.Rpc;
using Cloud.Contracts.Agent.V1;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Cloud.Agent.Tests;

/// <summary>The agent's image pulls and deletes: one transfer for concurrent pulls, every transfer checked, nothing kept of a bad one, no delete under a running pull.</summary>
public sealed class ImagePullerTests
{
    private static readonly byte[] Bytes = RandomNumberGenerator.GetBytes(300_000);

    [Fact]
    public async Task ConcurrentPulls_OfOneImage_TransferItOnce()
    {
        var source = new CountingSource(Bytes);
        var target = new FakeImageTarget();
        var puller = new ImagePuller(target, source, Peers(), NullLogger<ImagePuller>.Instance);

        var pulls = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => Task.Run(() => puller.PullAsync(Request(Bytes), CancellationToken.None))));

        Assert.Equal(1, source.Reads);
        Assert.Equal(1, pulls.Count(p => p.Transferred));
        Assert.True(target.Has("img-1", Sha(Bytes)));
        Assert.False((await puller.PullAsync(Request(Bytes), CancellationToken.None)).Transferred);
        Assert.Equal(1, source.Reads);
    }

    [Theory]
    [InlineData("flip")]
    [InlineData("short")]
    [InlineData("long")]
    public async Task DamagedTransfer_IsRefused_KeepsNothing_AndTheNextPullTriesAgain(string damage)
    {
        var sent = damage switch
        {
            "short" => Bytes[..^1],
            "long" => [.. Bytes, 0],
            _ => Flip(Bytes),
        };
        var source = new CountingSource(sent);
        var target = new FakeImageTarget();
        var puller = new ImagePuller(target, source, Peers(), NullLogger<ImagePuller>.Instance);

        var error = await Assert.ThrowsAsync<HypervisorException>(() => puller.PullAsync(Request(Bytes), CancellationToken.None));

        Assert.Equal(HypervisorError.InvalidArgument, error.Error);
        Assert.False(target.Has("img-1", Sha(Bytes)));
        await Assert.ThrowsAsync<HypervisorException>(() => puller.PullAsync(Request(Bytes), CancellationToken.None));
        Assert.Equal(2, source.Reads);
    }

    [Theory]
    [InlineData("../etc", "raw", 64, 1)]
    [InlineData("img-1", "vmdk", 64, 1)]
    [InlineData("img-1", "raw", 10, 1)]
    [InlineData("img-1", "raw", 64, 0)]
    public async Task MalformedRequest_IsRefused_BeforeAnyTransfer(string id, string format, int shaLength, long size)
    {
        var source = new CountingSource(Bytes);
        var puller = new ImagePuller(new FakeImageTarget(), source, Peers(), NullLogger<ImagePuller>.Instance);
        var request = new PullImageRequest { ImageId = id, Format = format, Sha256 = new string('a', shaLength), SizeBytes = size };

        var error = await Assert.ThrowsAsync<HypervisorException>(() => puller.PullAsync(request, CancellationToken.None));

        Assert.Equal(HypervisorError.InvalidArgument, error.Error);
        Assert.Equal(0, source.Reads);
    }

    [Fact]
    public async Task Delete_WhileThePullRuns_IsRefused_ThenRemovesTheImage()
    {
        var source = new GatedSource(Bytes);
        var target = new FakeImageTarget();
        var puller = new ImagePuller(target, source, Peers(), NullLogger<ImagePuller>.Instance);
        var pull = puller.PullAsync(Request(Bytes), CancellationToken.None);
        await source.Started.Task;

        var during = await Assert.ThrowsAsync<HypervisorException>(() => puller.DeleteAsync(new DeleteImageRequest { ImageId = "img-1" }, CancellationToken.None));
        source.Release.SetResult();
        await pull;

        Assert.Equal(HypervisorError.FailedPrecondition, during.Error);
        Assert.True(target.Has("img-1", Sha(Bytes)));
        Assert.Equal(DeleteImageResponse.Types.Outcome.Removed, (await puller.DeleteAsync(new DeleteImageRequest { ImageId = "img-1" }, CancellationToken.None)).Outcome);
        Assert.False(target.Has("img-1", Sha(Bytes)));
        Assert.Equal(DeleteImageResponse.Types.Outcome.Absent, (await puller.DeleteAsync(new DeleteImageRequest { ImageId = "img-1" }, CancellationToken.None)).Outcome);
        var invalid = await Assert.ThrowsAsync<HypervisorException>(() => puller.DeleteAsync(new DeleteImageRequest { ImageId = "../img-1" }, CancellationToken.None));
        Assert.Equal(HypervisorError.InvalidArgument, invalid.Error);
    }

    /// <summary>Peers of a node that has no certificate yet: these pulls come from the controller, never from a peer.</summary>
    private static PeerAgents Peers()
        => new(new NodeIdentity(Options.Create(new AgentOptions { NodeName = "node-a", TlsDirectory = "/nonexistent/tls" }), TimeProvider.System));

    private static PullImageRequest Request(byte[] bytes) => new() { ImageId = "img-1", Format = "raw", Sha256 = Sha(bytes), SizeBytes = bytes.Length };

    private static string Sha(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static byte[] Flip(byte[] bytes)
    {
        var copy = (byte[])bytes.Clone();
        copy[1234] ^= 1;
        return copy;
    }

    /// <summary>Serves fixed bytes in one chunk once released; says when a read has begun.</summary>
    private sealed class GatedSource(byte[] bytes) : IImageSourceReader
    {
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadAsync(string imageId, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            Started.SetResult();
            await Release.Task.WaitAsync(cancellationToken);
            yield return bytes;
        }
    }

    /// <summary>Serves fixed bytes in 64 KiB chunks, slowly enough that concurrent pulls overlap.</summary>
    private sealed class CountingSource(byte[] bytes) : IImageSourceReader
    {
        private int _reads;

        public int Reads => Volatile.Read(ref _reads);

        public async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadAsync(string imageId, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _reads);
            for (var offset = 0; offset < bytes.Length; offset += 65536)
            {
                await Task.Yield();
                yield return bytes.AsMemory(offset, Math.Min(65536, bytes.Length - offset));
            }
        }
    }
}
