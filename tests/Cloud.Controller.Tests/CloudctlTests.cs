using Cloud.Cli;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>cloudctl against the running controller, with a config file as up.sh writes it.</summary>
[Collection(CloudCollection.Name)]
public sealed class CloudctlTests(CloudFixture cloud) : IDisposable
{
    private readonly string _config = WriteConfig(cloud);

    [Fact]
    public async Task Vm_create_then_list_shows_the_running_vm_and_its_node()
    {
        var (createExit, createOutput) = await RunAsync("vm", "create", "--name", "cli-vm", "--flavor", "m1.tiny");
        Assert.Equal(0, createExit);
        Assert.Contains("SUCCEEDED", createOutput, StringComparison.Ordinal);

        var (listExit, listOutput) = await RunAsync("vm", "list");
        Assert.Equal(0, listExit);
        var row = listOutput.Split('\n').Single(l => l.Contains("cli-vm", StringComparison.Ordinal));
        Assert.Contains("RUNNING", row, StringComparison.Ordinal);
        Assert.Contains("test-node-", row, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Json_output_is_the_api_message()
    {
        var (exit, output) = await RunAsync("flavor", "list", "-o", "json");
        Assert.Equal(0, exit);
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        Assert.Contains(doc.RootElement.GetProperty("flavors").EnumerateArray(), f => f.GetProperty("name").GetString() == "m1.small");
    }

    [Fact]
    public async Task An_api_error_is_reported_without_a_stack_trace()
    {
        var error = await Assert.ThrowsAsync<CliException>(() => RunAsync("vm", "create", "--name", "x", "--flavor", "missing"));
        Assert.Equal("NOT_FOUND: Flavor 'missing' does not exist.", error.Message);
    }

    private Task<(int Exit, string Output)> RunAsync(params string[] args) => Cloudctl.RunAsync(_config, args);

    private static string WriteConfig(CloudFixture cloud) => Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken);

    public void Dispose() => File.Delete(_config);
}
