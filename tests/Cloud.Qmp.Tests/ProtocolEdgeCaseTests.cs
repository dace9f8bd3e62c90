using System.Net;
using System.Net.Sockets;
using System.Text;
using Cloud.Qmp.Tests.Support;

namespace Cloud.Qmp.Tests;

/// <summary>What a broken or hostile peer can do, through the scripted fake server.</summary>
public sealed class ProtocolEdgeCaseTests
{
    private static QmpClientOptions Options(int maxBytes = 64 * 1024) => new()
    {
        CommandTimeout = TimeSpan.FromSeconds(10),
        ConnectTimeout = TimeSpan.FromSeconds(10),
        MaxMessageBytes = maxBytes,
    };

    [Fact]
    public async Task ExecuteAsync_ReplyIsNotJson_FailsWithProtocolErrorAndCloses()
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.HandshakeAsync();
            await peer.ReadCommandAsync();
            await peer.WriteLineAsync("{\"return\": {\"status\": ");
            await peer.WriteLineAsync("garbage");
            await peer.DrainAsync();
        });
        await using var client = await QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None);

        var error = await Assert.ThrowsAsync<QmpProtocolException>(() => client.ExecuteAsync("query-status", null, CancellationToken.None));

        Assert.Contains("not JSON", error.Message);
        Assert.IsType<QmpProtocolException>(await client.Disconnected);
        Assert.False(client.IsConnected);
    }

    [Theory]
    [InlineData("[1, 2, 3]", "Array")]
    [InlineData("{\"something\": 1}", "neither an event nor a reply")]
    [InlineData("{\"return\": {}, \"error\": {\"class\": \"X\", \"desc\": \"y\"}, \"id\": 1}", "neither an event nor a reply")]
    [InlineData("{\"return\": {}, \"id\": \"not-ours\"}", "id is not one this client sent")]
    [InlineData("{\"error\": {\"class\": \"GenericError\", \"desc\": \"unparsable\"}}", "without an id")]
    [InlineData("{\"event\": 42}", "name is not a string")]
    [InlineData("{\"event\": \"STOP\", \"data\": [1]}", "data that is not an object")]
    [InlineData("{\"event\": \"STOP\", \"timestamp\": {\"seconds\": \"x\", \"microseconds\": 0}}", "malformed timestamp")]
    public async Task ExecuteAsync_MalformedMessage_FailsWithProtocolError(string line, string expected)
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.HandshakeAsync();
            await peer.ReadCommandAsync();
            await peer.WriteLineAsync(line);
            await peer.DrainAsync();
        });
        await using var client = await QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None);

        var error = await Assert.ThrowsAsync<QmpProtocolException>(() => client.ExecuteAsync("query-status", null, CancellationToken.None));

        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public async Task ExecuteAsync_ErrorReplyWithoutClass_FailsWithProtocolError()
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.HandshakeAsync();
            var command = await peer.ReadCommandAsync();
            await peer.WriteLineAsync($$"""{"error": {"desc": "no class"}, "id": {{command!.Value.Id}}}""");
            await peer.DrainAsync();
        });
        await using var client = await QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None);

        var error = await Assert.ThrowsAsync<QmpProtocolException>(() => client.ExecuteAsync("query-status", null, CancellationToken.None));

        Assert.Contains("malformed error reply", error.Message);
    }

    [Fact]
    public async Task ExecuteAsync_OversizedReply_IsCutOffAtTheLimit()
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.HandshakeAsync();
            await peer.ReadCommandAsync();
            // 64 KiB of a string that never ends: the client must stop buffering at its 4 KiB limit.
            var huge = Encoding.UTF8.GetBytes("{\"return\": \"" + new string('x', 64 * 1024));
            await peer.WriteRawAsync(huge);
            await peer.DrainAsync();
        });
        await using var client = await QmpClient.ConnectAsync(server.Endpoint, Options(maxBytes: 4096), CancellationToken.None);

        var error = await Assert.ThrowsAsync<QmpProtocolException>(() => client.ExecuteAsync("query-status", null, CancellationToken.None));

        Assert.Contains("exceeds the limit of 4096 bytes", error.Message);
    }

    [Fact]
    public async Task ExecuteAsync_LargeReplyUnderTheLimit_IsReadWhole()
    {
        var payload = new string('y', 300 * 1024);
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.HandshakeAsync();
            var command = await peer.ReadCommandAsync();
            await peer.WriteLineAsync($$"""{"return": {"blob": "{{payload}}"}, "id": {{command!.Value.Id}}}""");
            await peer.DrainAsync();
        });
        await using var client = await QmpClient.ConnectAsync(server.Endpoint, Options(maxBytes: 1024 * 1024), CancellationToken.None);

        var reply = await client.ExecuteAsync("query-blob", null, CancellationToken.None);

        Assert.Equal(payload.Length, reply.GetProperty("blob").GetString()!.Length);
    }

    [Fact]
    public async Task ConnectAsync_PeerIsNotQmp_FailsWithProtocolError()
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.WriteLineAsync("{\"hello\": \"I am not QEMU\"}");
            await peer.DrainAsync();
        });

        var error = await Assert.ThrowsAsync<QmpProtocolException>(() => QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None));

        Assert.Contains("did not greet with a QMP object", error.Message);
        Assert.Contains("I am not QEMU", error.Message);
    }

    /// <summary>
    /// QEMU may emit an event in the moment between accepting the socket and greeting; the client
    /// still negotiates, and the event is delivered like any other.
    /// </summary>
    [Fact]
    public async Task ConnectAsync_EventBeforeTheGreeting_IsDeliveredAndTheHandshakeCompletes()
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.WriteLineAsync("""{"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "RESUME"}""");
            await peer.HandshakeAsync();
            await peer.DrainAsync();
        });

        await using var client = await QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None);

        Assert.Equal(7, client.Greeting.Major);
        Assert.True(client.Events.TryRead(out var early));
        Assert.Equal("RESUME", early.Name);
    }

    [Fact]
    public async Task ConnectAsync_OnlyEventsAndNeverAGreeting_IsAProtocolError()
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            for (var i = 0; i < 20; i++)
            {
                await peer.WriteLineAsync("""{"event": "RESUME"}""");
            }
            await peer.DrainAsync();
        });

        var error = await Assert.ThrowsAsync<QmpProtocolException>(() => QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None));

        Assert.Contains("RESUME", error.Message);
    }

    [Fact]
    public async Task ExecuteAsync_NoReply_TimesOutAndLateReplyIsIgnored()
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.HandshakeAsync();
            var first = await peer.ReadCommandAsync();
            var second = await peer.ReadCommandAsync();
            // The late reply to the timed-out command arrives first and must not be taken for the second's.
            await peer.WriteLineAsync($$"""{"return": {"which": "first"}, "id": {{first!.Value.Id}}}""");
            await peer.WriteLineAsync($$"""{"return": {"which": "second"}, "id": {{second!.Value.Id}}}""");
            await peer.DrainAsync();
        });
        await using var client = await QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None);

        var timeout = await Assert.ThrowsAsync<QmpTimeoutException>(() => client.ExecuteAsync("slow-command", null, TimeSpan.FromMilliseconds(200), CancellationToken.None));
        var reply = await client.ExecuteAsync("query-status", null, CancellationToken.None);

        Assert.Equal("slow-command", timeout.Command);
        Assert.Equal("second", reply.GetProperty("which").GetString());
        Assert.True(client.IsConnected);
    }

    [Fact]
    public async Task ExecuteAsync_RepliesOutOfOrder_AreMatchedById()
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.HandshakeAsync();
            var a = await peer.ReadCommandAsync();
            var b = await peer.ReadCommandAsync();
            await peer.WriteLineAsync($$"""{"return": {"name": "{{b!.Value.Execute}}"}, "id": {{b.Value.Id}}}""");
            await peer.WriteLineAsync("""{"event": "RESET", "data": {"guest": true}, "timestamp": {"seconds": 1700000000, "microseconds": 5}}""");
            await peer.WriteLineAsync($$"""{"return": {"name": "{{a!.Value.Execute}}"}, "id": {{a.Value.Id}}}""");
            await peer.DrainAsync();
        });
        await using var client = await QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None);

        var first = client.ExecuteAsync("command-a", null, CancellationToken.None);
        var second = client.ExecuteAsync("command-b", null, CancellationToken.None);
        await Task.WhenAll(first, second);
        var reset = await client.Events.ReadAsync();

        Assert.Equal("command-a", (await first).GetProperty("name").GetString());
        Assert.Equal("command-b", (await second).GetProperty("name").GetString());
        Assert.Equal("RESET", reset.Name);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1700000000).AddTicks(50), reset.Timestamp);
    }

    [Fact]
    public async Task ExecuteAsync_PeerDropsConnection_PendingCommandFailsThenReconnectWorks()
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.HandshakeAsync();
            var command = await peer.ReadCommandAsync();
            if (command?.Execute == "hang-up")
            {
                return; // closes the connection with the command unanswered
            }
            await peer.WriteLineAsync($$"""{"return": {"ok": true}, "id": {{command!.Value.Id}}}""");
            await peer.DrainAsync();
        });
        await using var client = await QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None);

        await Assert.ThrowsAsync<QmpDisconnectedException>(() => client.ExecuteAsync("hang-up", null, CancellationToken.None));
        Assert.Null(await client.Disconnected);
        await client.ReconnectAsync(CancellationToken.None);
        var reply = await client.ExecuteAsync("query-status", null, CancellationToken.None);

        Assert.True(reply.GetProperty("ok").GetBoolean());
        Assert.Equal(2, server.Accepted);
    }

    [Fact]
    public async Task ExecuteAsync_ReconnectOnDemand_ReconnectsAClosedClient()
    {
        var connection = 0;
        await using var server = new FakeQmpServer(async peer =>
        {
            var n = Interlocked.Increment(ref connection);
            await peer.HandshakeAsync();
            if (n == 1)
            {
                return;
            }
            var command = await peer.ReadCommandAsync();
            await peer.WriteLineAsync($$"""{"return": {"connection": {{n}}}, "id": {{command!.Value.Id}}}""");
            await peer.DrainAsync();
        });
        var options = Options();
        options.ReconnectOnDemand = true;
        await using var client = await QmpClient.ConnectAsync(server.Endpoint, options, CancellationToken.None);
        await client.Disconnected;

        var reply = await client.ExecuteAsync("query-status", null, CancellationToken.None);

        Assert.Equal(2, reply.GetProperty("connection").GetInt32());
    }

    [Fact]
    public async Task ConnectAsync_NothingListens_GivesUpAfterConnectTimeout()
    {
        var path = Path.Combine(Path.GetTempPath(), "fq-missing-" + Guid.NewGuid().ToString("N")[..8] + ".sock");
        var options = Options();
        options.ConnectTimeout = TimeSpan.FromMilliseconds(300);

        var error = await Assert.ThrowsAsync<QmpDisconnectedException>(() => QmpClient.ConnectAsync(QmpEndpoint.Unix(path), options, CancellationToken.None));

        Assert.Contains("within", error.Message);
    }

    [Fact]
    public async Task ExecuteAsync_Cancelled_ThrowsOperationCanceledNotTimeout()
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.HandshakeAsync();
            await peer.DrainAsync();
        });
        await using var client = await QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None);
        using var cancel = new CancellationTokenSource();

        var pending = client.ExecuteAsync("never-answered", null, cancel.Token);
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
    }

    [Fact]
    public void Endpoint_TcpOnNonLoopback_IsRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => QmpEndpoint.Tcp(IPAddress.Parse("192.0.2.10"), 4444));

        Assert.Contains("loopback", error.Message);
    }

    [Fact]
    public void Endpoint_UnixPathTooLong_IsRefused()
    {
        Assert.Throws<ArgumentException>(() => QmpEndpoint.Unix("/" + new string('a', 120)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("bad name")]
    [InlineData("x\"injection")]
    public async Task ExecuteAsync_InvalidCommandName_IsRefusedBeforeSending(string name)
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.HandshakeAsync();
            await peer.DrainAsync();
        });
        await using var client = await QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None);

        await Assert.ThrowsAsync<ArgumentException>(() => client.ExecuteAsync(name, null, CancellationToken.None));
    }

    [Fact]
    public void Chardev_ForTcpEndpoint_IsAServerOnTheLoopbackPort()
    {
        var endpoint = QmpEndpoint.Tcp(IPAddress.Loopback, 4444);

        Assert.Equal("socket,host=127.0.0.1,port=4444,server=on,wait=off", endpoint.ToChardevOptions());
        Assert.Equal("socket,path=/a,,b,server=on,wait=off", QmpEndpoint.Unix("/a,b").ToChardevOptions());
    }

    [Fact]
    public async Task Greeting_MissingVersion_IsAProtocolError()
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.WriteLineAsync("{\"QMP\": {\"capabilities\": []}}");
            await peer.DrainAsync();
        });

        var error = await Assert.ThrowsAsync<QmpProtocolException>(() => QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None));

        Assert.Contains("version", error.Message);
    }

    [Fact]
    public async Task Disconnected_PeerVanishesMidMessage_ReportsProtocolError()
    {
        await using var server = new FakeQmpServer(async peer =>
        {
            await peer.HandshakeAsync();
            await peer.WriteRawAsync(Encoding.UTF8.GetBytes("{\"event\": \"STO"));
        });
        await using var client = await QmpClient.ConnectAsync(server.Endpoint, Options(), CancellationToken.None);

        var reason = await client.Disconnected;

        Assert.IsType<QmpProtocolException>(reason);
        Assert.Contains("middle of a message", reason!.Message);
        _ = typeof(SocketException);
    }
}
