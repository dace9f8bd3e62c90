using System.IO.Pipes;
using Cloud.Qmp.Tests.Support;

namespace Cloud.Qmp.Tests;

/// <summary>
/// QMP over a named pipe, as Windows builds of QEMU serve it with <c>-chardev pipe</c>. .NET maps
/// a pipe name to a unix socket on Linux, so a pipe server here speaks to the client exactly as
/// QEMU's pipe would on Windows.
/// </summary>
public sealed class NamedPipeTransportTests
{
    private static readonly QmpClientOptions Options = new() { CommandTimeout = TimeSpan.FromSeconds(30), ConnectTimeout = TimeSpan.FromSeconds(30) };

    [Fact]
    public async Task ConnectAsync_PipeCreatedAfterTheClientStarts_GreetsNegotiatesAndCarriesCommandsAndEvents()
    {
        var name = "cloud-qmp-test-" + Guid.NewGuid().ToString("N");
        // The client starts first, as the agent does right after launching QEMU: it waits for the pipe.
        var connecting = QmpClient.ConnectAsync(QmpEndpoint.Pipe(name), Options, CancellationToken.None);
        await using var pipe = new NamedPipeServerStream(name, PipeDirection.InOut, 1, PipeTransmissionMode.Byte, PipeOptions.Asynchronous);
        await pipe.WaitForConnectionAsync().WaitAsync(TimeSpan.FromSeconds(60));
        using var stop = new CancellationTokenSource();
        await using var peer = new FakeQmpPeer(pipe, stop.Token);
        var server = Task.Run(async () =>
        {
            await peer.HandshakeAsync();
            var command = await peer.ReadCommandAsync() ?? throw new IOException("client left");
            Assert.Equal("query-status", command.Execute);
            await peer.WriteLineAsync("""{"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "RESUME"}""");
            await peer.WriteLineAsync($$"""{"return": {"status": "running", "running": true}, "id": {{command.Id}}}""");
            await peer.DrainAsync();
        });
        await using var client = await connecting;

        var status = await client.ExecuteAsync("query-status", null, CancellationToken.None);

        Assert.Equal("pipe:" + name, client.Endpoint.ToString());
        Assert.Equal(new Version(7, 2, 0), client.Greeting.Version);
        Assert.Equal("running", status.GetProperty("status").GetString());
        var resumed = await client.Events.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("RESUME", resumed.Name);
        await client.DisposeAsync();
        await server.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task ConnectAsync_NoPipeServer_TimesOutWithADisconnectedError()
    {
        var options = new QmpClientOptions { ConnectTimeout = TimeSpan.FromMilliseconds(300) };

        var error = await Assert.ThrowsAsync<QmpDisconnectedException>(() => QmpClient.ConnectAsync(QmpEndpoint.Pipe("cloud-qmp-nobody-" + Guid.NewGuid().ToString("N")), options, CancellationToken.None));

        Assert.Contains("pipe:cloud-qmp-nobody-", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData(@"..\x")]
    [InlineData("a,server=on")]
    public void Pipe_NameThatIsNotAPlainName_IsRefused(string name)
        => Assert.Throws<ArgumentException>(() => QmpEndpoint.Pipe(name));
}
