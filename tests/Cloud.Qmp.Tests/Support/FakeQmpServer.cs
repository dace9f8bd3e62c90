using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Cloud.Qmp.Tests.Support;

/// <summary>
/// A scripted QMP peer on a unix socket, for what a real QEMU never does: malformed or oversized
/// replies, silence, out-of-order answers, dropped connections. Each accepted connection runs
/// the script given to the constructor.
/// </summary>
internal sealed class FakeQmpServer : IAsyncDisposable
{
    public const string Greeting = """{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}""";

    private readonly Socket _listener;
    private readonly Func<FakeQmpPeer, Task> _script;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly List<Task> _connections = [];
    private int _accepted;

    public FakeQmpServer(Func<FakeQmpPeer, Task> script)
    {
        Directory = Path.Combine(Path.GetTempPath(), "fq-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(Directory);
        SocketPath = Path.Combine(Directory, "qmp.sock");
        _script = script;
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        _listener.Listen(8);
        _acceptLoop = AcceptLoopAsync();
    }

    public string Directory { get; }

    public string SocketPath { get; }

    public QmpEndpoint Endpoint => QmpEndpoint.Unix(SocketPath);

    public int Accepted => Volatile.Read(ref _accepted);

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var socket = await _listener.AcceptAsync(_stop.Token);
                Interlocked.Increment(ref _accepted);
                var peer = new FakeQmpPeer(new NetworkStream(socket, ownsSocket: true), _stop.Token);
                lock (_connections)
                {
                    _connections.Add(RunAsync(peer));
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task RunAsync(FakeQmpPeer peer)
    {
        await using (peer)
        {
            try
            {
                await _script(peer);
            }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        await _acceptLoop;
        Task[] connections;
        lock (_connections)
        {
            connections = [.. _connections];
        }
        await Task.WhenAll(connections);
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}

/// <summary>One connection of the fake server, with helpers to read commands and write raw lines.</summary>
internal sealed class FakeQmpPeer(Stream stream, CancellationToken stop) : IAsyncDisposable
{
    private readonly Stream _stream = stream;
    private readonly StreamReader _reader = new(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, leaveOpen: true);

    public async Task WriteLineAsync(string line) => await _stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\r\n"), stop);

    public async Task WriteRawAsync(byte[] bytes) => await _stream.WriteAsync(bytes, stop);

    /// <summary>The next command: its name and its id's raw JSON, or null when the client hung up.</summary>
    public async Task<(string Execute, string Id)?> ReadCommandAsync()
    {
        var line = await _reader.ReadLineAsync(stop);
        if (line is null)
        {
            return null;
        }
        using var document = JsonDocument.Parse(line);
        return (document.RootElement.GetProperty("execute").GetString()!, document.RootElement.GetProperty("id").GetRawText());
    }

    /// <summary>Greets and answers qmp_capabilities, like QEMU does at the start of every connection.</summary>
    public async Task HandshakeAsync()
    {
        await WriteLineAsync(FakeQmpServer.Greeting);
        var command = await ReadCommandAsync() ?? throw new IOException("client left before negotiating");
        Assert.Equal("qmp_capabilities", command.Execute);
        await WriteLineAsync($$"""{"return": {}, "id": {{command.Id}}}""");
    }

    /// <summary>Keeps the connection open until the client closes it or the server stops.</summary>
    public async Task DrainAsync()
    {
        while (await ReadCommandAsync() is not null)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _reader.Dispose();
        await _stream.DisposeAsync();
    }
}
