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
        var service = Single(objects, "Service");
        var pod = deployment.GetProperty("spec").GetProperty("template");
        var declared = pod.GetProperty("spec").GetProperty("containers")[0].GetProperty("ports").EnumerateArray()
            .Select(p => p.GetProperty("name").GetString()).ToHashSet();

        Assert.All(service.GetProperty("spec").GetProperty("ports").EnumerateArray(), p => Assert.Contains(p.GetProperty("targetPort").GetString(), declared));
        Assert.Equal(
            service.GetProperty("spec").GetProperty("selector").GetProperty("app").GetString(),
            pod.GetProperty("metadata").GetProperty("labels").GetProperty("app").GetString());
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
        var agentPort = agent.GetProperty("ports")[0].GetProperty("containerPort").GetInt32();

        Assert.Equal("/healthz/ready", controller.GetProperty("readinessProbe").GetProperty("httpGet").GetProperty("path").GetString());
        Assert.Equal("/healthz/live", controller.GetProperty("livenessProbe").GetProperty("httpGet").GetProperty("path").GetString());
        Assert.Equal("readiness", agent.GetProperty("readinessProbe").GetProperty("grpc").GetProperty("service").GetString());
        Assert.Equal("liveness", agent.GetProperty("livenessProbe").GetProperty("grpc").GetProperty("service").GetString());
        Assert.Equal(agentPort, agent.GetProperty("readinessProbe").GetProperty("grpc").GetProperty("port").GetInt32());
        Assert.Equal(agentPort, agent.GetProperty("livenessProbe").GetProperty("grpc").GetProperty("port").GetInt32());
    }

    private static JsonElement Single(IReadOnlyList<JsonElement> objects, string kind) =>
        Assert.Single(objects, o => o.GetProperty("kind").GetString() == kind);
}
