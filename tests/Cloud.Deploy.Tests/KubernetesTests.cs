using System.Text.Json;

namespace Cloud.Deploy.Tests;

/// <summary>The Kubernetes manifests: well-formed objects that refer to each other consistently.</summary>
public sealed class KubernetesTests
{
    public static TheoryData<string> Manifests => ["deploy/k8s/controller.yaml", "deploy/k8s/agent.yaml"];

    [Theory]
    [MemberData(nameof(Manifests))]
    public void Every_object_has_a_kind_a_name_and_lives_in_the_cloud_namespace(string manifest)
    {
        var objects = RepoFiles.ReadYamlDocuments(manifest);

        Assert.NotEmpty(objects);
        Assert.All(objects, o =>
        {
            Assert.False(string.IsNullOrEmpty(o.GetProperty("apiVersion").GetString()));
            var kind = o.GetProperty("kind").GetString();
            var metadata = o.GetProperty("metadata");
            Assert.False(string.IsNullOrEmpty(metadata.GetProperty("name").GetString()));
            if (kind != "Namespace")
            {
                Assert.Equal("cloud", metadata.GetProperty("namespace").GetString());
            }
        });
    }

    [Fact]
    public void Controller_service_targets_ports_the_pods_declare_and_selects_them()
    {
        var objects = RepoFiles.ReadYamlDocuments("deploy/k8s/controller.yaml");
        var deployment = Single(objects, "Deployment");
        var pod = deployment.GetProperty("spec").GetProperty("template");
        var declared = pod.GetProperty("spec").GetProperty("containers")[0].GetProperty("ports").EnumerateArray()
            .Select(p => p.GetProperty("name").GetString()).ToHashSet();

        var services = objects.Where(o => o.GetProperty("kind").GetString() == "Service").ToList();
        Assert.Equal(2, services.Count);
        Assert.All(services, service =>
        {
            Assert.All(service.GetProperty("spec").GetProperty("ports").EnumerateArray(), p => Assert.Contains(p.GetProperty("targetPort").GetString(), declared));
            Assert.Equal(
                service.GetProperty("spec").GetProperty("selector").GetProperty("app").GetString(),
                pod.GetProperty("metadata").GetProperty("labels").GetProperty("app").GetString());
        });
        Assert.True(deployment.GetProperty("spec").GetProperty("replicas").GetInt32() >= 2, "the controller runs as several replicas");
    }

    [Fact]
    public void Migrations_are_a_job_of_their_own()
    {
        var job = Single(RepoFiles.ReadYamlDocuments("deploy/k8s/controller.yaml"), "Job");
        var container = job.GetProperty("spec").GetProperty("template").GetProperty("spec").GetProperty("containers")[0];

        Assert.Equal(["migrate"], container.GetProperty("args").EnumerateArray().Select(a => a.GetString()));
    }

    [Fact]
    public void Agent_keeps_its_vm_state_on_the_host_where_it_tells_qemu_to_keep_it()
    {
        var daemonSet = Single(RepoFiles.ReadYamlDocuments("deploy/k8s/agent.yaml"), "DaemonSet");
        var spec = daemonSet.GetProperty("spec").GetProperty("template").GetProperty("spec");
        var container = spec.GetProperty("containers")[0];
        var dataDirectory = container.GetProperty("env").EnumerateArray()
            .Single(e => e.GetProperty("name").GetString() == "Agent__Qemu__DataDirectory").GetProperty("value").GetString();
        var stateMount = container.GetProperty("volumeMounts").EnumerateArray().Single(m => m.GetProperty("mountPath").GetString() == dataDirectory);
        var stateVolume = spec.GetProperty("volumes").EnumerateArray().Single(v => v.GetProperty("name").GetString() == stateMount.GetProperty("name").GetString());

        Assert.True(spec.GetProperty("hostNetwork").GetBoolean());
        Assert.Equal(dataDirectory, stateVolume.GetProperty("hostPath").GetProperty("path").GetString());
    }

    /// <summary>
    /// Readiness and liveness are different questions: the probes ask each its own, at the paths
    /// and grpc.health.v1 service names the processes serve (tests/Cloud.Controller.Tests/HealthTests).
    /// </summary>
    [Fact]
    public void Probes_ask_readiness_and_liveness_separately()
    {
        var controller = Single(RepoFiles.ReadYamlDocuments("deploy/k8s/controller.yaml"), "Deployment")
            .GetProperty("spec").GetProperty("template").GetProperty("spec").GetProperty("containers")[0];
        var agent = Single(RepoFiles.ReadYamlDocuments("deploy/k8s/agent.yaml"), "DaemonSet")
            .GetProperty("spec").GetProperty("template").GetProperty("spec").GetProperty("containers")[0];
        Assert.Equal("/healthz/ready", controller.GetProperty("readinessProbe").GetProperty("httpGet").GetProperty("path").GetString());
        Assert.Equal("/healthz/live", controller.GetProperty("livenessProbe").GetProperty("httpGet").GetProperty("path").GetString());
        // The controller's REST port serves TLS: an HTTP probe would be refused.
        Assert.Equal("HTTPS", controller.GetProperty("readinessProbe").GetProperty("httpGet").GetProperty("scheme").GetString());
        Assert.Equal("HTTPS", controller.GetProperty("livenessProbe").GetProperty("httpGet").GetProperty("scheme").GetString());
        // The agent's gRPC port takes clients with a cloud certificate only: its probes ask the metrics listener.
        Assert.False(agent.GetProperty("readinessProbe").TryGetProperty("grpc", out _));
        Assert.False(agent.GetProperty("livenessProbe").TryGetProperty("grpc", out _));
    }

    /// <summary>
    /// The agent's probes reach what the metrics listener serves (GET /metrics, HTTP/1.1, no TLS)
    /// where it listens: on the host's loopback, which a hostNetwork pod shares with the kubelet.
    /// </summary>
    [Fact]
    public void Agent_probes_ask_the_metrics_listener_where_it_listens()
    {
        var daemonSet = Single(RepoFiles.ReadYamlDocuments("deploy/k8s/agent.yaml"), "DaemonSet");
        var spec = daemonSet.GetProperty("spec").GetProperty("template").GetProperty("spec");
        var agent = spec.GetProperty("containers")[0];
        var metrics = System.Net.IPEndPoint.Parse(Env(agent, "Telemetry__MetricsListen"));
        var grpcPort = agent.GetProperty("ports")[0].GetProperty("containerPort").GetInt32();

        Assert.True(spec.GetProperty("hostNetwork").GetBoolean());
        Assert.True(System.Net.IPAddress.IsLoopback(metrics.Address), "without a scrape token the metrics listener must be loopback");
        foreach (var probe in new[] { "readinessProbe", "livenessProbe" })
        {
            var get = agent.GetProperty(probe).GetProperty("httpGet");
            Assert.Equal("/metrics", get.GetProperty("path").GetString());
            Assert.Equal(metrics.Port, get.GetProperty("port").GetInt32());
            Assert.Equal(metrics.Address.ToString(), get.GetProperty("host").GetString());
            Assert.NotEqual(grpcPort, get.GetProperty("port").GetInt32());
        }
    }

    [Fact]
    public void Controller_reads_its_ca_from_a_secret_read_only_and_never_makes_one()
    {
        var pod = Single(RepoFiles.ReadYamlDocuments("deploy/k8s/controller.yaml"), "Deployment").GetProperty("spec").GetProperty("template").GetProperty("spec");
        var controller = pod.GetProperty("containers")[0];
        var directory = Env(controller, "Trust__Directory");
        var mount = controller.GetProperty("volumeMounts").EnumerateArray().Single(m => m.GetProperty("mountPath").GetString() == directory);
        var volume = pod.GetProperty("volumes").EnumerateArray().Single(v => v.GetProperty("name").GetString() == mount.GetProperty("name").GetString());

        Assert.True(mount.GetProperty("readOnly").GetBoolean());
        Assert.Equal("cloud-ca", volume.GetProperty("secret").GetProperty("secretName").GetString());
        Assert.DoesNotContain(controller.GetProperty("env").EnumerateArray(), e => e.GetProperty("name").GetString() is "Trust__CreateCa" or "Trust__PlaintextApi");
        Assert.Contains(controller.GetProperty("env").EnumerateArray(), e => e.GetProperty("name").GetString() == "Trust__ControllerNames__0");
    }

    /// <summary>The node port has a cluster-internal Service of its own; the public Service does not carry it; agents call it over https.</summary>
    [Fact]
    public void Node_port_is_served_by_an_internal_service_of_its_own_which_agents_call()
    {
        var objects = RepoFiles.ReadYamlDocuments("deploy/k8s/controller.yaml");
        var controller = Single(objects, "Deployment").GetProperty("spec").GetProperty("template").GetProperty("spec").GetProperty("containers")[0];
        var nodePort = System.Net.IPEndPoint.Parse(Env(controller, "Controller__NodeListen")).Port;
        var nodePortName = controller.GetProperty("ports").EnumerateArray().Single(p => p.GetProperty("containerPort").GetInt32() == nodePort).GetProperty("name").GetString();
        var services = objects.Where(o => o.GetProperty("kind").GetString() == "Service").ToList();
        bool Carries(JsonElement service) => service.GetProperty("spec").GetProperty("ports").EnumerateArray().Any(p => p.GetProperty("targetPort").GetString() == nodePortName);

        var nodeService = Assert.Single(services, Carries);
        var publicService = Assert.Single(services, s => !Carries(s));
        Assert.Single(nodeService.GetProperty("spec").GetProperty("ports").EnumerateArray());
        Assert.Equal("ClusterIP", nodeService.GetProperty("spec").GetProperty("type").GetString());
        Assert.NotEqual(publicService.GetProperty("metadata").GetProperty("name").GetString(), nodeService.GetProperty("metadata").GetProperty("name").GetString());

        var agent = Single(RepoFiles.ReadYamlDocuments("deploy/k8s/agent.yaml"), "DaemonSet").GetProperty("spec").GetProperty("template").GetProperty("spec").GetProperty("containers")[0];
        var port = nodeService.GetProperty("spec").GetProperty("ports")[0].GetProperty("port").GetInt32();
        Assert.Equal($"https://{nodeService.GetProperty("metadata").GetProperty("name").GetString()}.cloud.svc:{port}", Env(agent, "Agent__ControllerUrl"));
        // The controller's certificate names the Service agents reach it by.
        Assert.Contains(controller.GetProperty("env").EnumerateArray(),
            e => e.GetProperty("name").GetString()!.StartsWith("Trust__ControllerNames__", StringComparison.Ordinal)
                && e.GetProperty("value").GetString() == $"{nodeService.GetProperty("metadata").GetProperty("name").GetString()}.cloud.svc");
    }

    /// <summary>
    /// Every agent's TLS folder is on its host state (certificates survive a pod restart), gets the
    /// CA from a ConfigMap (never the CA's Secret: a node can read every Secret its pods name),
    /// and the agent reads its join token from the Secret under its node name.
    /// </summary>
    [Fact]
    public void Agent_has_a_tls_folder_the_ca_and_a_join_token_file_per_node_name()
    {
        var spec = Single(RepoFiles.ReadYamlDocuments("deploy/k8s/agent.yaml"), "DaemonSet").GetProperty("spec").GetProperty("template").GetProperty("spec");
        var agent = spec.GetProperty("containers")[0];
        var volumes = spec.GetProperty("volumes").EnumerateArray().ToDictionary(v => v.GetProperty("name").GetString()!, v => v);
        var tls = Env(agent, "Agent__TlsDirectory");
        var tokenFile = Env(agent, "Agent__JoinTokenFile");

        var stateMount = agent.GetProperty("volumeMounts").EnumerateArray().Single(m => tls.StartsWith(m.GetProperty("mountPath").GetString() + "/", StringComparison.Ordinal));
        Assert.True(volumes[stateMount.GetProperty("name").GetString()!].TryGetProperty("hostPath", out _));
        Assert.EndsWith("/$(Agent__NodeName)", tokenFile, StringComparison.Ordinal);
        var tokenMount = agent.GetProperty("volumeMounts").EnumerateArray().Single(m => tokenFile.StartsWith(m.GetProperty("mountPath").GetString() + "/", StringComparison.Ordinal));
        Assert.True(tokenMount.GetProperty("readOnly").GetBoolean());
        Assert.True(volumes[tokenMount.GetProperty("name").GetString()!].TryGetProperty("secret", out _));

        var init = Assert.Single(spec.GetProperty("initContainers").EnumerateArray());
        var command = string.Join(' ', init.GetProperty("command").EnumerateArray().Select(c => c.GetString()));
        Assert.Contains($"{tls}/ca.pem", command, StringComparison.Ordinal);
        var caMount = init.GetProperty("volumeMounts").EnumerateArray().Single(m => command.Contains(m.GetProperty("mountPath").GetString() + "/ca.pem", StringComparison.Ordinal));
        Assert.True(volumes[caMount.GetProperty("name").GetString()!].TryGetProperty("configMap", out _));
        Assert.DoesNotContain(volumes.Values, v => v.TryGetProperty("secret", out var secret) && secret.GetProperty("secretName").GetString() == "cloud-ca");
    }

    [Theory]
    [MemberData(nameof(Manifests))]
    public void No_container_is_given_a_plaintext_url(string manifest)
    {
        var text = RepoFiles.Read(manifest);

        Assert.DoesNotContain("http://", text, StringComparison.Ordinal);
        Assert.DoesNotContain("h2c", text, StringComparison.Ordinal);
    }

    private static string Env(JsonElement container, string name)
        => container.GetProperty("env").EnumerateArray().Single(e => e.GetProperty("name").GetString() == name).GetProperty("value").GetString()!;

    private static JsonElement Single(IReadOnlyList<JsonElement> objects, string kind) =>
        Assert.Single(objects, o => o.GetProperty("kind").GetString() == kind);
}
