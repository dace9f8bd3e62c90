using System.Xml.Linq;
using Cloud.Agent.Hypervisor.Fake;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cloud.Agent.Tests;

/// <summary>
/// The agent is deployed as a Native AOT binary: its options are checked by generated validators
/// (no reflection), and its projects keep the AOT analyzers on so that the normal build fails on
/// code the native agent could not run.
/// </summary>
public sealed class AgentOptionsAndAotTests
{
    [Theory]
    [InlineData("Agent:NodeName", "Not_A_Label", "Agent:NodeName must be a DNS label")]
    [InlineData("Agent:Backend", "vmware", "Agent:Backend must be 'qemu' or 'fake'")]
    [InlineData("Agent:ControllerUrl", "not a url", "ControllerUrl")]
    [InlineData("Agent:HeartbeatInterval", "00:00:00.500", "Agent:HeartbeatInterval")]
    [InlineData("Agent:HeartbeatInterval", "00:10:00", "Agent:HeartbeatInterval")]
    [InlineData("Agent:Fake:Vcpus", "0", "Vcpus")]
    [InlineData("Agent:Fake:CpuLoad", "1.5", "CpuLoad")]
    public void Start_WithABadSetting_FailsNamingIt(string key, string value, string expected)
    {
        var error = Assert.Throws<OptionsValidationException>(() => Resolve(new() { [key] = value }));

        Assert.Contains(expected, string.Join(" ", error.Failures), StringComparison.Ordinal);
    }

    [Fact]
    public void Start_WithGoodSettings_BindsThem()
    {
        var (agent, fake) = Resolve(new() { ["Agent:HeartbeatInterval"] = "00:00:07", ["Agent:Fake:Vcpus"] = "12" });

        Assert.Equal(TimeSpan.FromSeconds(7), agent.HeartbeatInterval);
        Assert.Equal("node-a", agent.NodeName);
        Assert.Equal(12, fake.Vcpus);
    }

    [Theory]
    [InlineData("agent/Cloud.Agent/Cloud.Agent.csproj", true)]
    [InlineData("agent/Cloud.Agent.Qemu/Cloud.Agent.Qemu.csproj", false)]
    [InlineData("agent/Cloud.Agent.Hypervisor/Cloud.Agent.Hypervisor.csproj", false)]
    [InlineData("agent/Cloud.Qmp/Cloud.Qmp.csproj", false)]
    public void AgentProjects_DeclareAotCompatibility(string project, bool published)
    {
        var properties = XDocument.Load(Path.Combine(RepositoryRoot(), project)).Descendants()
            .Where(e => e.Parent?.Name.LocalName == "PropertyGroup")
            .ToDictionary(e => e.Name.LocalName, e => e.Value);

        Assert.Equal("true", properties.GetValueOrDefault("IsAotCompatible"));
        Assert.Equal(published ? "true" : null, properties.GetValueOrDefault("PublishAot"));
    }

    private static (AgentOptions Agent, FakeHypervisorOptions Fake) Resolve(Dictionary<string, string?> settings)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Agent:NodeName"] = "node-a",
            ["Agent:Listen"] = "127.0.0.2:7070",
            ["Agent:Backend"] = "fake",
        });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.ClearProviders();
        builder.AddAgent();
        using var services = builder.Services.BuildServiceProvider();
        return (services.GetRequiredService<IOptions<AgentOptions>>().Value, services.GetRequiredService<IOptions<FakeHypervisorOptions>>().Value);
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Cloud.sln")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("Cloud.sln not found above " + AppContext.BaseDirectory);
    }
}
