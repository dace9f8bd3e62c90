using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cloud.Qmp.Tests.Support;

namespace Cloud.Qmp.Tests;

/// <summary>The client against qemu-system-x86_64 itself.</summary>
public sealed class RealQemuTests
{
    private static readonly QmpClientOptions Options = new() { CommandTimeout = TimeSpan.FromSeconds(20), ConnectTimeout = TimeSpan.FromSeconds(20) };

    [Fact]
    public async Task ConnectAsync_RealQemu_ReadsGreetingAndLeavesNegotiation()
    {
        await using var qemu = QemuProcess.StartUnix();
        await using var client = await QmpClient.ConnectAsync(qemu.Endpoint, Options, CancellationToken.None);

        Assert.True(client.Greeting.Major >= 7, $"QEMU {client.Greeting} is older than 7");
        Assert.Contains("oob", client.Greeting.Capabilities);
        Assert.True(client.IsConnected);
        // Commands other than qmp_capabilities are refused in negotiation mode, so this proves we left it.
        var commands = await client.ExecuteAsync("query-commands", null, CancellationToken.None);
        Assert.Contains(commands.EnumerateArray(), c => c.GetProperty("name").GetString() == "query-status");
    }

    [Fact]
    public async Task ExecuteAsync_QueryStatus_ReturnsRunState()
    {
        await using var qemu = QemuProcess.StartUnix();
        await using var client = await QmpClient.ConnectAsync(qemu.Endpoint, Options, CancellationToken.None);

        var status = await client.ExecuteAsync("query-status", null, CancellationToken.None);

        Assert.Equal("running", status.GetProperty("status").GetString());
        Assert.True(status.GetProperty("running").GetBoolean());
    }

    [Fact]
    public async Task ExecuteAsync_UnknownCommand_ThrowsCommandNotFound()
    {
        await using var qemu = QemuProcess.StartUnix();
        await using var client = await QmpClient.ConnectAsync(qemu.Endpoint, Options, CancellationToken.None);

        var error = await Assert.ThrowsAsync<QmpCommandException>(() => client.ExecuteAsync("no-such-command", null, CancellationToken.None));

        Assert.Equal("CommandNotFound", error.ErrorClass);
        Assert.Equal("no-such-command", error.Command);
        Assert.Contains("no-such-command", error.Description);
        // The connection survives an error reply.
        var status = await client.ExecuteAsync("query-status", null, CancellationToken.None);
        Assert.Equal("running", status.GetProperty("status").GetString());
    }

    [Fact]
    public async Task ExecuteAsync_InvalidArguments_ThrowsGenericError()
    {
        await using var qemu = QemuProcess.StartUnix();
        await using var client = await QmpClient.ConnectAsync(qemu.Endpoint, Options, CancellationToken.None);

        var error = await Assert.ThrowsAsync<QmpCommandException>(() => client.ExecuteAsync("device_del", new JsonObject { ["id"] = "missing-device" }, CancellationToken.None));

        Assert.Equal("DeviceNotFound", error.ErrorClass);
    }

    [Fact]
    public async Task Events_StopThenCont_DeliversStopAndResume()
    {
        await using var qemu = QemuProcess.StartUnix();
        await using var client = await QmpClient.ConnectAsync(qemu.Endpoint, Options, CancellationToken.None);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        await client.ExecuteAsync("stop", null, timeout.Token);
        var stop = await NextEventAsync(client, "STOP", timeout.Token);
        await client.ExecuteAsync("cont", null, timeout.Token);
        var resume = await NextEventAsync(client, "RESUME", timeout.Token);

        Assert.True(resume.Timestamp >= stop.Timestamp);
        Assert.True(Math.Abs((DateTimeOffset.UtcNow - stop.Timestamp).TotalMinutes) < 5, "event timestamps come from QEMU's clock");
        Assert.Equal(JsonValueKind.Object, resume.Data.ValueKind);
    }

    [Fact]
    public async Task ExecuteAsync_ManyConcurrentCommands_EachGetsItsOwnReply()
    {
        await using var qemu = QemuProcess.StartUnix();
        await using var client = await QmpClient.ConnectAsync(qemu.Endpoint, Options, CancellationToken.None);

        var tasks = Enumerable.Range(0, 60).Select(async i =>
        {
            var command = (i % 3) switch { 0 => "query-status", 1 => "query-name", _ => "query-version" };
            var reply = await client.ExecuteAsync(command, null, CancellationToken.None);
            return (command, reply);
        }).ToList();
        var results = await Task.WhenAll(tasks);

        foreach (var (command, reply) in results)
        {
            switch (command)
            {
                case "query-status": Assert.True(reply.TryGetProperty("status", out _), reply.ToString()); break;
                case "query-version": Assert.True(reply.TryGetProperty("qemu", out _), reply.ToString()); break;
                default: Assert.False(reply.TryGetProperty("status", out _) || reply.TryGetProperty("qemu", out _), reply.ToString()); break;
            }
        }
    }

    [Fact]
    public async Task Disconnected_QemuQuits_CompletesAndLaterCommandsFail()
    {
        await using var qemu = QemuProcess.StartUnix();
        await using var client = await QmpClient.ConnectAsync(qemu.Endpoint, Options, CancellationToken.None);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        await client.ExecuteAsync("quit", null, timeout.Token);
        var reason = await client.Disconnected.WaitAsync(timeout.Token);
        var shutdown = await NextEventAsync(client, "SHUTDOWN", timeout.Token);

        Assert.Null(reason);
        Assert.False(client.IsConnected);
        Assert.Equal("host-qmp-quit", shutdown.Data.GetProperty("reason").GetString());
        await Assert.ThrowsAsync<QmpDisconnectedException>(() => client.ExecuteAsync("query-status", null, CancellationToken.None));
    }

    [Fact]
    public async Task ReconnectAsync_SameQemu_NegotiatesAgainAndKeepsEventStream()
    {
        await using var qemu = QemuProcess.StartUnix();
        await using var client = await QmpClient.ConnectAsync(qemu.Endpoint, Options, CancellationToken.None);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        await client.ReconnectAsync(timeout.Token);
        await client.ExecuteAsync("stop", null, timeout.Token);

        var stop = await NextEventAsync(client, "STOP", timeout.Token);
        Assert.Equal("STOP", stop.Name);
        var status = await client.ExecuteAsync("query-status", null, timeout.Token);
        Assert.Equal("paused", status.GetProperty("status").GetString());
    }

    [Fact]
    public async Task ConnectAsync_TcpLoopback_WorksLikeUnixSocket()
    {
        // The Windows transport: QMP on a loopback TCP port.
        await using var qemu = QemuProcess.StartTcp();
        await using var client = await QmpClient.ConnectAsync(qemu.Endpoint, Options, CancellationToken.None);

        var status = await client.ExecuteAsync("query-status", null, CancellationToken.None);

        Assert.Equal(IPAddress.Loopback, qemu.Endpoint.TcpEndPoint!.Address);
        Assert.Equal("running", status.GetProperty("status").GetString());
    }

    private static async Task<QmpEvent> NextEventAsync(QmpClient client, string name, CancellationToken cancellationToken)
    {
        await foreach (var e in client.Events.ReadAllAsync(cancellationToken))
        {
            if (e.Name == name)
            {
                return e;
            }
        }
        throw new InvalidOperationException("event stream ended");
    }
}
