using System.Net;
using System.Text.Json;

namespace Cloud.Deploy.Tests;

/// <summary>docker-compose.yml with TLS on: the CA, a join token per agent, certificates' paths, no plaintext listener, the node port kept inside.</summary>
public sealed class ComposeTrustTests
{
    private static readonly Dictionary<string, string> Variables = new()
    {
        ["CLOUD_OPERATOR_TOKEN_SHA256"] = new string('a', 64),
        ["CLOUD_OPERATOR_TOKEN"] = "operator-secret",
    };

    public static TheoryData<string> Agents => ["agent-1", "agent-2"];

    [Theory]
    [MemberData(nameof(Agents))]
    public void Every_agent_has_a_tls_folder_on_its_volume_and_a_join_token_file_that_node_join_fills(string agent)
    {
        var services = Resolved();
        var environment = services[agent].GetProperty("environment");
        var tls = environment.GetProperty("Agent__TlsDirectory").GetString()!;
        var tokenFile = environment.GetProperty("Agent__JoinTokenFile").GetString()!;
        var (volume, mountPath, _) = Volumes(services[agent]).Single(v => tls.StartsWith(v.Target + "/", StringComparison.Ordinal));

        Assert.Equal(tls, Path.GetDirectoryName(tokenFile));
        Assert.Equal(agent, environment.GetProperty("Agent__NodeName").GetString());
        // node-join mounts the same volume and writes <folder>/<node>/tls/{ca.pem,join-token} for each node it lists.
        var join = services["node-join"];
        var joinMount = Volumes(join).Single(v => v.Source == volume);
        Assert.Equal("/nodes/" + agent, joinMount.Target);
        Assert.Equal("/nodes/" + agent + tls[mountPath.Length..], $"/nodes/{agent}/tls");
        Assert.Contains(agent, join.GetProperty("environment").GetProperty("NODES").GetString()!.Split(' '));
        Assert.Equal("service_completed_successfully", services[agent].GetProperty("depends_on").GetProperty("node-join").GetProperty("condition").GetString());
    }

    [Fact]
    public void Node_join_reads_the_ca_read_only_and_writes_both_files_each_agent_reads()
    {
        var services = Resolved();
        var join = services["node-join"];
        var script = string.Join('\n', join.GetProperty("command").EnumerateArray().Select(c => c.GetString()));
        var trust = Volumes(services["controller"]).Single(v => v.Target == services["controller"].GetProperty("environment").GetProperty("Trust__Directory").GetString());

        Assert.Contains(Volumes(join), v => v.Source == trust.Source && v.ReadOnly);
        Assert.Contains("/ca.pem", script, StringComparison.Ordinal);
        Assert.Contains("/join-token", script, StringComparison.Ordinal);
        Assert.Contains("/v1/nodes/", script, StringComparison.Ordinal);
        Assert.Contains("--cacert", script, StringComparison.Ordinal);
        Assert.DoesNotContain("http://", script, StringComparison.Ordinal);
        Assert.DoesNotContain("--insecure", script, StringComparison.Ordinal);
    }

    [Fact]
    public void Controller_keeps_its_ca_on_a_volume_and_names_itself_as_agents_reach_it()
    {
        var controller = Resolved()["controller"];
        var environment = controller.GetProperty("environment");
        var directory = environment.GetProperty("Trust__Directory").GetString();

        Assert.Contains(Volumes(controller), v => v.Target == directory);
        Assert.False(environment.TryGetProperty("Trust__PlaintextApi", out _), "the compose controller serves its API over TLS");
        var names = environment.EnumerateObject().Where(p => p.Name.StartsWith("Trust__ControllerNames__", StringComparison.Ordinal)).Select(p => p.Value.GetString()).ToList();
        Assert.Contains("controller", names);
        Assert.Contains("127.0.0.1", names);
    }

    [Fact]
    public void Node_port_is_not_published_and_agents_call_it_over_https()
    {
        var services = Resolved();
        var controller = services["controller"];
        var nodePort = EndPoint(controller.GetProperty("environment").GetProperty("Controller__NodeListen").GetString()!).Port;
        var published = controller.GetProperty("ports").EnumerateArray()
            .Select(p => p.ValueKind == JsonValueKind.String ? int.Parse(p.GetString()!.Split(':')[^1].Split('/')[0], System.Globalization.CultureInfo.InvariantCulture) : p.GetProperty("target").GetInt32());

        Assert.DoesNotContain(nodePort, published);
        foreach (var agent in new[] { "agent-1", "agent-2" })
        {
            Assert.Equal($"https://controller:{nodePort}", services[agent].GetProperty("environment").GetProperty("Agent__ControllerUrl").GetString());
        }
    }

    [Fact]
    public void No_service_is_given_a_plaintext_url()
    {
        foreach (var (name, service) in Resolved())
        {
            if (!service.TryGetProperty("environment", out var environment))
            {
                continue;
            }
            Assert.All(environment.EnumerateObject(), variable =>
                Assert.False(variable.Value.GetString()?.StartsWith("http://", StringComparison.Ordinal) ?? false, $"{name}: {variable.Name} is plaintext"));
        }
    }

    /// <summary>QEMU takes migrations on the agent's own fixed address, which its certificate names.</summary>
    [Theory]
    [MemberData(nameof(Agents))]
    public void Agents_listen_and_take_migrations_on_their_fixed_network_address(string agent)
    {
        var service = Resolved()[agent];
        var environment = service.GetProperty("environment");
        var listen = EndPoint(environment.GetProperty("Agent__Listen").GetString()!);
        var migration = IPAddress.Parse(environment.GetProperty("Agent__Qemu__ListenAddress").GetString()!);
        var fixedAddress = IPAddress.Parse(service.GetProperty("networks").EnumerateObject().Single().Value.GetProperty("ipv4_address").GetString()!);

        Assert.Equal(fixedAddress, listen.Address);
        Assert.Equal(fixedAddress, migration);
        Assert.StartsWith("https://", environment.GetProperty("Agent__AdvertiseUrl").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Config_without_the_operator_token_itself_is_refused_naming_the_variable()
    {
        var (code, _, stderr) = RepoFiles.Run("docker-compose", ["-f", "docker-compose.yml", "config", "-q"],
            new Dictionary<string, string> { ["CLOUD_OPERATOR_TOKEN_SHA256"] = new string('a', 64), ["CLOUD_OPERATOR_TOKEN"] = "" });

        Assert.NotEqual(0, code);
        Assert.Contains("CLOUD_OPERATOR_TOKEN", stderr, StringComparison.Ordinal);
    }

    private static IPEndPoint EndPoint(string listen) => IPEndPoint.Parse(listen);

    private static List<(string Source, string Target, bool ReadOnly)> Volumes(JsonElement service)
        => [.. service.GetProperty("volumes").EnumerateArray().Select(v => v.ValueKind == JsonValueKind.String
            ? (v.GetString()!.Split(':')[0], v.GetString()!.Split(':')[1], v.GetString()!.Split(':').ElementAtOrDefault(2) == "ro")
            : (v.GetProperty("source").GetString()!, v.GetProperty("target").GetString()!, v.TryGetProperty("read_only", out var ro) && ro.GetBoolean()))];

    internal static Dictionary<string, JsonElement> Resolved()
    {
        var (code, stdout, stderr) = RepoFiles.Run("docker-compose", ["-f", "docker-compose.yml", "config"], Variables);
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
