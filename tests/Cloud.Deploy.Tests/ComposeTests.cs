using System.Text.Json;

namespace Cloud.Deploy.Tests;

/// <summary>docker-compose.yml as docker-compose itself resolves it (no engine needed for `config`).</summary>
public sealed class ComposeTests
{
    private static readonly Dictionary<string, string> WithToken = new()
    {
        ["CLOUD_OPERATOR_TOKEN_SHA256"] = new string('a', 64),
        ["CLOUD_OPERATOR_TOKEN"] = "operator-secret",
    };

    [Fact]
    public void Config_with_the_operator_token_resolves_every_service()
    {
        var services = ResolvedServices();

        Assert.Equal(["agent-1", "agent-2", "controller", "migrate", "node-join", "postgres"], services.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Controller_starts_after_migrations_and_publishes_on_loopback_only()
    {
        var controller = ResolvedServices()["controller"];

        Assert.Equal("service_completed_successfully", controller.GetProperty("depends_on").GetProperty("migrate").GetProperty("condition").GetString());
        var published = controller.GetProperty("ports").EnumerateArray().ToList();
        Assert.Equal(2, published.Count);
        // The short form ("127.0.0.1:8080:8080/tcp") or the long one ({host_ip: ...}), by version.
        Assert.All(published, port => Assert.Equal("127.0.0.1", port.ValueKind == JsonValueKind.String
            ? port.GetString()!.Split(':')[0]
            : port.GetProperty("host_ip").GetString()));
        Assert.Equal(["migrate"], ResolvedServices()["migrate"].GetProperty("command").EnumerateArray().Select(a => a.GetString()));
    }

    [Fact]
    public void Second_agent_inherits_the_first_and_overrides_its_name()
    {
        var services = ResolvedServices();
        var first = services["agent-1"].GetProperty("environment");
        var second = services["agent-2"].GetProperty("environment");

        Assert.Equal("agent-2", second.GetProperty("Agent__NodeName").GetString());
        // A literal address: agents take only those for one another (PeerAgents), and the certificate names it.
        Assert.Equal("https://172.28.0.12:7070", second.GetProperty("Agent__AdvertiseUrl").GetString());
        Assert.Equal(first.GetProperty("Agent__TlsDirectory").GetString(), second.GetProperty("Agent__TlsDirectory").GetString());
        Assert.Equal(first.GetProperty("Agent__ControllerUrl").GetString(), second.GetProperty("Agent__ControllerUrl").GetString());
        Assert.Equal("qemu", second.GetProperty("Agent__Backend").GetString());
    }

    [Fact]
    public void Config_without_the_operator_token_is_refused_naming_the_variable()
    {
        var (code, _, stderr) = RepoFiles.Run("docker-compose", ["-f", "docker-compose.yml", "config", "-q"], new Dictionary<string, string> { ["CLOUD_OPERATOR_TOKEN_SHA256"] = "", ["CLOUD_OPERATOR_TOKEN"] = "operator-secret" });

        Assert.NotEqual(0, code);
        Assert.Contains("CLOUD_OPERATOR_TOKEN_SHA256", stderr, StringComparison.Ordinal);
    }

    private static Dictionary<string, JsonElement> ResolvedServices()
    {
        var (code, stdout, stderr) = RepoFiles.Run("docker-compose", ["-f", "docker-compose.yml", "config"], WithToken);
        Assert.True(code == 0, "docker-compose config failed: " + stderr);
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, stdout);
            var document = Assert.Single(RepoFiles.ReadYamlDocuments(file));
            return document.GetProperty("services").EnumerateObject().ToDictionary(s => s.Name, s => s.Value);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
