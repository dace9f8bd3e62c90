using System.Text;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts;
using Cloud.Contracts.Agent.V1;
using Grpc.Core;

namespace Cloud.Agent.Tests;

/// <summary>GetConsoleOutput on the fake backend, its validation, and the tail of a log file as the QEMU backend reads it.</summary>
public sealed class ConsoleOutputTests(AgentServerFixture agent) : IClassFixture<AgentServerFixture>
{
    private static CallOptions Deadline => new(deadline: DateTime.UtcNow.AddSeconds(10));

    private async Task<string> RunningVmAsync(string id)
    {
        await agent.Client.CreateVmAsync(new CreateVmRequest
        {
            Spec = new VmSpec { VmId = id, Name = "console-" + id, Shape = new VmShape { Vcpus = 1, MemoryMb = 128, DiskGb = 1 }, Start = true },
        }, Deadline);
        return id;
    }

    [Fact]
    public async Task GetConsoleOutput_on_the_fake_backend_names_the_vm_and_the_node()
    {
        var id = await RunningVmAsync("console1");

        var output = await agent.Client.GetConsoleOutputAsync(new GetConsoleOutputRequest { VmId = id }, Deadline);

        var text = output.Data.ToStringUtf8();
        Assert.Contains("VM console1 (console-console1) on node agent-under-test", text, StringComparison.Ordinal);
        Assert.Contains("state Running", text, StringComparison.Ordinal);
        Assert.Equal(0, output.Start);
        Assert.Equal(output.Data.Length, output.TotalBytes);
    }

    [Fact]
    public async Task GetConsoleOutput_with_a_small_max_bytes_returns_the_tail()
    {
        var id = await RunningVmAsync("console2");
        var whole = await agent.Client.GetConsoleOutputAsync(new GetConsoleOutputRequest { VmId = id }, Deadline);

        var tail = await agent.Client.GetConsoleOutputAsync(new GetConsoleOutputRequest { VmId = id, MaxBytes = 10 }, Deadline);

        Assert.Equal(10, tail.Data.Length);
        Assert.Equal(whole.Data.Span[^10..].ToArray(), tail.Data.ToByteArray());
        Assert.Equal(whole.TotalBytes - 10, tail.Start);
        Assert.Equal(whole.TotalBytes, tail.TotalBytes);
    }

    [Fact]
    public async Task GetConsoleOutput_of_an_unknown_vm_is_not_found()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetConsoleOutputAsync(new GetConsoleOutputRequest { VmId = "ghost" }, Deadline).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(ConsoleOutputLimits.MaxBytes + 1)]
    [InlineData(int.MinValue)]
    public async Task GetConsoleOutput_with_a_max_bytes_out_of_bounds_is_invalid(int maxBytes)
    {
        var id = await RunningVmAsync("console3");
        var error = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetConsoleOutputAsync(new GetConsoleOutputRequest { VmId = id, MaxBytes = maxBytes }, Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("max_bytes", error.Status.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("")]
    public async Task GetConsoleOutput_with_an_id_that_could_name_a_path_is_invalid(string id)
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetConsoleOutputAsync(new GetConsoleOutputRequest { VmId = id }, Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    [Fact]
    public async Task ReadTailAsync_returns_the_last_bytes_of_the_file_and_where_they_start()
    {
        var path = Path.Combine(Path.GetTempPath(), "console-tail-" + Guid.NewGuid().ToString("N") + ".log");
        try
        {
            var content = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 1000).Select(i => $"tick={i}\n")));
            await File.WriteAllBytesAsync(path, content);

            var all = await ConsoleLogs.ReadTailAsync(path, ConsoleOutputLimits.DefaultBytes, CancellationToken.None);
            var tail = await ConsoleLogs.ReadTailAsync(path, 9, CancellationToken.None);

            Assert.Equal(content, all.Data.ToByteArray());
            Assert.Equal(0, all.Start);
            Assert.Equal("tick=999\n", tail.Data.ToStringUtf8());
            Assert.Equal(content.Length - 9, tail.Start);
            Assert.Equal(content.Length, tail.TotalBytes);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task ReadTailAsync_of_a_log_never_written_is_empty()
    {
        var output = await ConsoleLogs.ReadTailAsync(Path.Combine(Path.GetTempPath(), "no-such-" + Guid.NewGuid().ToString("N"), "serial.log"), 100, CancellationToken.None);
        Assert.True(output.Data.IsEmpty);
        Assert.Equal(0, output.TotalBytes);
    }
}
