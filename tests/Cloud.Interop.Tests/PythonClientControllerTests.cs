using System.Text.Json;
using Cloud.Controller.Tests.Support;
using Cloud.Interop.Tests.Support;

namespace Cloud.Interop.Tests;

/// <summary>python3-grpcio calling the controller: reflection, health and the compute API, as any gRPC tool would.</summary>
[Collection(InteropCollection.Name)]
public sealed class PythonClientControllerTests(InteropFixture interop)
{
    private string Controller => InteropFixture.Target(interop.Cloud.GrpcUrl);

    [Fact]
    public async Task Reflection_lists_the_controllers_services_and_serves_the_compute_descriptor()
    {
        var result = await interop.ProbeAsync("reflect", Controller, "cloud.compute.v1.Compute", "grpc.health.v1.Health");

        foreach (var version in new[] { "v1", "v1alpha" })
        {
            var reflected = result.GetProperty(version);
            var services = reflected.GetProperty("services").EnumerateArray().Select(s => s.GetString()).ToList();
            Assert.Contains("cloud.compute.v1.Compute", services);
            Assert.Contains("cloud.node.v1.NodeRegistry", services);
            Assert.Contains("grpc.health.v1.Health", services);
            Assert.Contains("grpc.reflection.v1.ServerReflection", services);
            Assert.Contains("grpc.reflection.v1alpha.ServerReflection", services);

            var files = reflected.GetProperty("files").GetProperty("cloud.compute.v1.Compute").EnumerateArray().ToList();
            var compute = files.Single(f => f.Str("name") == "cloud/compute/v1/compute.proto");
            Assert.Equal("cloud.compute.v1", compute.Str("package"));
            var methods = compute.GetProperty("services").GetProperty("Compute").EnumerateArray().Select(m => m.GetString()).ToList();
            Assert.Contains("ListFlavors", methods);
            Assert.Contains("GetConsoleOutput", methods);
            // The file's imports come with it, so a client can build the whole descriptor pool.
            Assert.Contains(files, f => f.Str("name") == "google/protobuf/timestamp.proto");
            Assert.Contains(reflected.GetProperty("files").GetProperty("grpc.health.v1.Health").EnumerateArray(),
                f => f.GetProperty("services").TryGetProperty("Health", out _));
            // grpc.StatusCode NOT_FOUND (5) for a symbol nobody serves.
            Assert.Equal(5, reflected.GetProperty("unknown_symbol").GetProperty("code").GetInt32());
        }
    }

    [Fact]
    public async Task Health_is_serving_for_the_default_readiness_and_liveness_services_and_unknown_names_are_not_found()
    {
        var result = await interop.ProbeAsync("health", Controller, "", "readiness", "liveness", "no-such-service");

        Assert.Equal("SERVING", result.Str(""));
        Assert.Equal("SERVING", result.Str("readiness"));
        Assert.Equal("SERVING", result.Str("liveness"));
        Assert.Equal("NOT_FOUND", result.Str("no-such-service"));
    }

    [Fact]
    public async Task A_compute_call_with_an_operators_token_in_metadata_is_answered()
    {
        var result = await interop.ProbeAsync("flavors", Controller, CloudFixture.OperatorToken);

        Assert.Equal("OK", result.Str("code"));
        Assert.Contains("m1.tiny", result.GetProperty("flavors").EnumerateArray().Select(f => f.GetString()));
    }

    [Fact]
    public async Task A_compute_call_without_a_token_is_unauthenticated_with_a_message()
    {
        var result = await interop.ProbeAsync("flavors", Controller, "-");

        Assert.Equal("UNAUTHENTICATED", result.Str("code"));
        Assert.False(string.IsNullOrWhiteSpace(result.Str("details")));
    }

    [Fact]
    public async Task A_compute_call_with_a_wrong_token_is_unauthenticated()
    {
        var result = await interop.ProbeAsync("flavors", Controller, "not-a-token");

        Assert.Equal("UNAUTHENTICATED", result.Str("code"));
    }

    [Fact]
    public async Task A_python_client_that_does_not_trust_the_cloud_CA_cannot_connect()
    {
        static Dictionary<string, string> Quick(IReadOnlyDictionary<string, string> tls) => new(tls) { ["CLOUD_READY_TIMEOUT"] = "3" };

        var stranger = await interop.ProbeAsync(Quick(interop.TrustingStranger), "flavors", Controller, CloudFixture.OperatorToken);
        var plaintext = await interop.ProbeAsync(Quick(new Dictionary<string, string>()), "flavors", Controller, CloudFixture.OperatorToken);
        var trusting = await interop.ProbeAsync(Quick(interop.TrustingCa), "flavors", Controller, CloudFixture.OperatorToken);

        // The channel never becomes ready: the handshake fails (a CA it does not trust; no TLS at all).
        Assert.Equal("NOT_READY", stranger.Str("code"));
        Assert.Equal("NOT_READY", plaintext.Str("code"));
        // The same call from a client that trusts the CA is answered, with the same wait allowed.
        Assert.Equal("OK", trusting.Str("code"));
    }
}
