using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Cloud.Cli;
using Cloud.Contracts.Node.V1;
using Cloud.Contracts.Trust;
using Cloud.Controller.Tests.Support;
using Cloud.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Cloud.Controller.Tests;

/// <summary>
/// cloudctl over TLS: the controller's certificate is checked against the CA cloudctl is given
/// (chain and name, as any TLS client checks them), and the node verbs that the cloud's trust
/// brought (join-token, delete).
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class CloudctlTlsTests(CloudFixture cloud) : IDisposable
{
    private readonly List<string> _files = [];

    [Fact]
    public async Task The_profiles_ca_file_is_trusted_and_the_controller_answers()
    {
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken, Cloudctl.CaFile));

        var (exit, output) = await Cloudctl.RunAsIsAsync(config, "node", "list");

        Assert.Equal(0, exit);
        Assert.Contains("test-node-1", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_controller_whose_certificate_is_from_another_ca_is_refused_naming_the_ca_file()
    {
        var strangerCa = Track(WriteCa(TestTrust.NewStranger()));
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken, Cloudctl.CaFile));

        var error = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsIsAsync(config, "node", "list", "--ca-file", strangerCa));

        Assert.StartsWith($"The controller at {cloud.RestUrl} is not trusted:", error.Message, StringComparison.Ordinal);
        Assert.Contains($"is not issued by the CA in '{strangerCa}'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_ca_file_the_system_trust_store_refuses_the_cloud_ca_and_says_how_to_give_one()
    {
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken, caFile: ""));

        var error = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsIsAsync(config, "node", "list"));

        Assert.Contains("does not chain to a root of the system's trust store", error.Message, StringComparison.Ordinal);
        Assert.Contains("--ca-file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_environment_variable_names_the_ca_when_the_profile_has_none()
    {
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken, caFile: ""));
        Environment.SetEnvironmentVariable("CLOUDCTL_CA_FILE", Cloudctl.CaFile);
        try
        {
            var (exit, output) = await Cloudctl.RunAsIsAsync(config, "node", "list");

            Assert.Equal(0, exit);
            Assert.Contains("test-node-2", output, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable("CLOUDCTL_CA_FILE", null);
        }
    }

    /// <summary>A server with a certificate of the right CA is still refused when the certificate does not name the address typed.</summary>
    [Fact]
    public async Task A_certificate_of_the_right_ca_for_another_address_is_refused_and_one_for_this_address_is_accepted()
    {
        using var otherAddress = TestTrust.Shared.Issue(CloudIdentity.ControllerSubject, CloudIdentity.ControllerUri, [IPAddress.Parse("10.9.9.9")]);
        using var thisAddress = TestTrust.Shared.Issue(CloudIdentity.ControllerSubject, CloudIdentity.ControllerUri, [IPAddress.Loopback]);

        await using (var server = await TlsServer.StartAsync(otherAddress))
        {
            var config = Track(Cloudctl.WriteConfig(server.Url, CloudFixture.OperatorToken, Cloudctl.CaFile));
            var error = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsIsAsync(config, "node", "list"));
            Assert.Contains("does not name '127.0.0.1'", error.Message, StringComparison.Ordinal);
        }
        await using (var server = await TlsServer.StartAsync(thisAddress))
        {
            var config = Track(Cloudctl.WriteConfig(server.Url, CloudFixture.OperatorToken, Cloudctl.CaFile));
            var (exit, output) = await Cloudctl.RunAsIsAsync(config, "node", "list", "-o", "json");
            Assert.Equal(0, exit);
            Assert.Contains("tls-test-node", output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_server_with_a_stranger_certificate_for_this_address_is_refused()
    {
        using var stranger = TestTrust.NewStranger().Issue(CloudIdentity.ControllerSubject, CloudIdentity.ControllerUri, [IPAddress.Loopback]);
        await using var server = await TlsServer.StartAsync(stranger);
        var config = Track(Cloudctl.WriteConfig(server.Url, CloudFixture.OperatorToken, Cloudctl.CaFile));

        var error = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsIsAsync(config, "node", "list"));

        Assert.Contains("issued by CN=stranger-ca", error.Message, StringComparison.Ordinal);
        Assert.Contains("is not issued by the CA in", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://10.1.2.3:8080", "is http:// to a host other than this machine")]
    [InlineData("http://controller.example:8080", "http:// works only for loopback addresses")]
    [InlineData("ftp://127.0.0.1:8080", "must be an https:// URL")]
    public async Task Plain_http_beyond_loopback_and_other_schemes_are_refused_before_any_connection(string url, string expected)
    {
        var config = Track(Cloudctl.WriteConfig(new Uri(url), CloudFixture.OperatorToken, caFile: ""));

        var setProfile = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsIsAsync(config, "config", "set-profile", "remote", "--url", url));
        var call = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsIsAsync(config, "node", "list"));

        Assert.Contains(expected, setProfile.Message, StringComparison.Ordinal);
        Assert.Contains(expected, call.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Set_profile_keeps_the_ca_file_it_checked_and_refuses_one_that_is_not_a_ca()
    {
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken, caFile: ""));
        var notCa = Track(Path.Combine(Path.GetTempPath(), $"leaf-{Guid.NewGuid():N}.pem"));
        using (var leaf = TestTrust.Shared.Node("some-node"))
        {
            await File.WriteAllTextAsync(notCa, leaf.ExportCertificatePem());
        }

        var refused = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsIsAsync(config, "config", "set-profile", "default", "--ca-file", notCa));
        var missing = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsIsAsync(config, "config", "set-profile", "default", "--ca-file", notCa + ".missing"));
        Assert.Equal(0, (await Cloudctl.RunAsIsAsync(config, "config", "set-profile", "default", "--ca-file", Cloudctl.CaFile)).Exit);
        var (exit, output) = await Cloudctl.RunAsIsAsync(config, "node", "list");

        Assert.Contains("is not a certificate authority", refused.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", missing.Message, StringComparison.Ordinal);
        Assert.Equal(0, exit);
        Assert.Contains("test-node-1", output, StringComparison.Ordinal);
        Assert.Contains(Cloudctl.CaFile, (await Cloudctl.RunAsIsAsync(config, "config", "view")).Output, StringComparison.Ordinal);
    }

    /// <summary>The printed token joins: NodeTrust/Join on the node port issues the node's certificates for it, once.</summary>
    [Fact]
    public async Task Join_token_prints_a_token_with_which_the_node_joins_once_then_delete_revokes_its_certificates()
    {
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken));
        const string node = "cli-joined-node";

        var (exit, output) = await Cloudctl.RunAsync(config, "node", "join-token", node, "--ttl", "10m", "-o", "json");
        Assert.Equal(0, exit);
        using var json = JsonDocument.Parse(output);
        var token = json.RootElement.GetProperty("token").GetString()!;
        var expires = json.RootElement.GetProperty("expireTime").GetDateTimeOffset();
        Assert.Equal(node, json.RootElement.GetProperty("nodeName").GetString());
        Assert.StartsWith("cjt_", token, StringComparison.Ordinal);
        Assert.InRange(expires - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(9), TimeSpan.FromMinutes(10.5));

        using var channel = cloud.NewGrpcChannel(cloud.NodeUrl);
        var trust = new NodeTrust.NodeTrustClient(channel);
        var issued = await trust.JoinAsync(new JoinRequest { NodeName = node, JoinToken = token, Requests = Requests("127.0.0.250") });
        using var certificate = X509Certificate2.CreateFromPem(issued.NodeCertificate);
        Assert.Equal(CloudIdentity.NodeUri(node), CloudIdentity.IdentityUriOf(certificate));
        Assert.True(CertificateAuthority.Verifies(TestTrust.Shared.Authority.Certificate, certificate, DateTime.UtcNow));
        var again = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() =>
            trust.JoinAsync(new JoinRequest { NodeName = node, JoinToken = token, Requests = Requests("127.0.0.250") }).ResponseAsync);
        Assert.Equal(Grpc.Core.StatusCode.Unauthenticated, again.StatusCode);

        var (deleteExit, deleted) = await Cloudctl.RunAsync(config, "node", "delete", node);
        Assert.Equal(0, deleteExit);
        Assert.Contains($"Node {node} deleted; 2 certificate(s) revoked.", deleted, StringComparison.Ordinal);
        var gone = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsync(config, "node", "delete", node));
        Assert.StartsWith("NOT_FOUND", gone.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Join_token_in_table_form_prints_the_token_alone_on_a_line_and_quiet_prints_only_it()
    {
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken));

        var (_, table) = await Cloudctl.RunAsync(config, "node", "join-token", "cli-table-node");
        var (_, quiet) = await Cloudctl.RunAsync(config, "node", "join-token", "cli-table-node", "--quiet", "--ttl", "1h");

        Assert.Contains("it is not shown again", table, StringComparison.Ordinal);
        Assert.Single(table.Split('\n'), line => line.StartsWith("cjt_", StringComparison.Ordinal) && !line.Contains(' ', StringComparison.Ordinal));
        Assert.Matches("^cjt_[A-Za-z0-9_-]{43}\n$", quiet.Replace("\r", "", StringComparison.Ordinal));
    }

    private static CertificateRequests Requests(string address)
    {
        using var nodeKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var qemuKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var requests = new CertificateRequests
        {
            NodeCsr = new CertificateRequest("CN=ignored", nodeKey, HashAlgorithmName.SHA256).CreateSigningRequestPem(),
            QemuCsr = new CertificateRequest("CN=ignored", qemuKey, HashAlgorithmName.SHA256).CreateSigningRequestPem(),
        };
        requests.Addresses.Add(address);
        return requests;
    }

    private static string WriteCa(TestTrust trust)
    {
        var path = Path.Combine(Path.GetTempPath(), $"ca-{Guid.NewGuid():N}.pem");
        File.WriteAllText(path, trust.Authority.CertificatePem());
        return path;
    }

    private string Track(string path)
    {
        _files.Add(path);
        return path;
    }

    public void Dispose()
    {
        foreach (var file in _files)
        {
            File.Delete(file);
        }
    }

    /// <summary>A stand-in controller on loopback serving one certificate and a node list.</summary>
    private sealed class TlsServer(WebApplication app, Uri url) : IAsyncDisposable
    {
        public Uri Url { get; } = url;

        public static async Task<TlsServer> StartAsync(X509Certificate2 certificate)
        {
            var port = Ports.Free(IPAddress.Loopback);
            var builder = WebApplication.CreateBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, port, o => o.UseHttps(certificate)));
            var app = builder.Build();
            app.MapGet("/v1/nodes", () => Results.Text("""{"nodes":[{"name":"tls-test-node"}]}""", "application/json"));
            await app.StartAsync();
            return new TlsServer(app, new Uri($"https://127.0.0.1:{port}"));
        }

        public async ValueTask DisposeAsync() => await app.DisposeAsync();
    }
}

/// <summary>cloudctl node join-token's --ttl, checked before any call (no cloud needed).</summary>
public sealed class CloudctlTtlTests
{
    [Theory]
    [InlineData("5x", "is not a duration")]
    [InlineData("ten", "is not a duration")]
    [InlineData("30s", "between 1 minute and 7 days")]
    [InlineData("8d", "between 1 minute and 7 days")]
    public async Task Join_token_refuses_a_bad_ttl_before_calling(string ttl, string expected)
    {
        var config = Cloudctl.WriteConfig(new Uri("https://127.0.0.1:1"), CloudFixture.OperatorToken);
        try
        {
            var error = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsync(config, "node", "join-token", "some-node", "--ttl", ttl));

            Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(config);
        }
    }

    [Theory]
    [InlineData("90s", 90)]
    [InlineData("30m", 1800)]
    [InlineData("2h", 7200)]
    [InlineData("7d", 604800)]
    [InlineData("01:30:00", 5400)]
    public void Ttl_forms_parse_to_their_seconds(string ttl, int seconds)
        => Assert.Equal(TimeSpan.FromSeconds(seconds), Commands.ParseTtl(ttl));
}
