using Cloud.Contracts.Agent.V1;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Grpc.Benchmarks;

/// <summary>
/// The benchmark's only gRPC-specific code: the channel to one agent and the few NodeAgent calls
/// the benchmark makes, on grpc-dotnet (Grpc.Net.Client) here. A port to another stack
/// rewrites this file (and the csproj's references) and keeps these members and their meaning:
/// <c>deploy/dev/bench.sh grpc</c> builds the current measuring code with the baseline revision's
/// copy of this file. Every call carries a deadline, as the controller's calls do.
/// </summary>
internal sealed class AgentClient : IDisposable
{
    private static readonly TimeSpan UnaryDeadline = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan StreamDeadline = TimeSpan.FromMinutes(5);

    private readonly GrpcChannel _channel;
    private readonly NodeAgent.NodeAgentClient _client;

    private AgentClient(GrpcChannel channel)
    {
        _channel = channel;
        _client = new NodeAgent.NodeAgentClient(channel);
    }

    /// <summary>
    /// One channel (one HTTP/2 connection) to the agent at https://address:port: mutual TLS, the
    /// client presenting the controller's certificate from <see cref="BenchTrust"/> (http:// for a
    /// plaintext agent).
    /// </summary>
    public static AgentClient Connect(string url) => new(GrpcChannel.ForAddress(url, new GrpcChannelOptions
    {
        HttpHandler = new SocketsHttpHandler { SslOptions = url.StartsWith("https:", StringComparison.Ordinal) ? BenchTrust.Shared.ClientOptions() : new() },
    }));

    /// <summary>The unary call measured: GetNodeInfo, a small answer the fake backend builds in memory.</summary>
    public Task GetNodeInfoAsync(CancellationToken cancellationToken)
        => _client.GetNodeInfoAsync(new GetNodeInfoRequest(), Unary(cancellationToken)).ResponseAsync;

    /// <summary>True once the agent answers GetNodeInfo; false while it is not serving yet.</summary>
    public async Task<bool> IsServingAsync(CancellationToken cancellationToken)
    {
        try
        {
            await GetNodeInfoAsync(cancellationToken);
            return true;
        }
        catch (RpcException)
        {
            return false;
        }
    }

    /// <summary>Creates and starts a 1 vCPU / 64 MB VM; throws unless it is running.</summary>
    public async Task CreateRunningVmAsync(string vmId, CancellationToken cancellationToken)
    {
        var vm = await _client.CreateVmAsync(new CreateVmRequest
        {
            Spec = new VmSpec { VmId = vmId, Name = vmId, Start = true, Shape = new VmShape { Vcpus = 1, MemoryMb = 64 } },
        }, Unary(cancellationToken));
        if (vm.State != VmState.Running)
        {
            throw new InvalidOperationException($"VM {vmId} is {vm.State}: {vm.Error}");
        }
    }

    /// <summary>ListVms (with usage, as a heartbeat lists them): how many VMs are running.</summary>
    public async Task<int> CountRunningVmsAsync(CancellationToken cancellationToken)
        => (await _client.ListVmsAsync(new ListVmsRequest(), Unary(cancellationToken))).Vms.Count(v => v.State == VmState.Running);

    /// <summary>Streams a stored image (ReadImage, FileChunk messages) to its end: messages and bytes received.</summary>
    public async Task<(long Messages, long Bytes)> ReadImageAsync(string imageId, CancellationToken cancellationToken)
    {
        using var call = _client.ReadImage(new ReadStoredImageRequest { ImageId = imageId }, new CallOptions(deadline: DateTime.UtcNow + StreamDeadline, cancellationToken: cancellationToken));
        long messages = 0, bytes = 0;
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            messages++;
            bytes += call.ResponseStream.Current.Data.Length;
        }
        return (messages, bytes);
    }

    public void Dispose() => _channel.Dispose();

    private static CallOptions Unary(CancellationToken cancellationToken) => new(deadline: DateTime.UtcNow + UnaryDeadline, cancellationToken: cancellationToken);
}
