using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cloud.Agent.Identity;
using Cloud.Contracts.Node.V1;
using Cloud.Contracts.Trust;
using Cloud.Testing;
using Grpc.Net.Client;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Cloud.Agent.Tests;

/// <summary>
/// The node's TLS folder: the agent keeps only certificates that are its own node's and from the
/// CA in its folder, whatever a controller sends; and a certificate it cannot renew shows in its
/// readiness, first as a failed renewal, then, once expired, as a call for a new join token.
/// </summary>
public sealed class NodeIdentityTests : IDisposable
{
    private const string Node = "node-a";
    private readonly string _folder = TestTrust.NewFolder("node-identity");

    public NodeIdentityTests() => TestTrust.Shared.WriteNodeCa(_folder);

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private NodeIdentity Identity(TimeProvider? time = null)
        => new(Options.Create(new AgentOptions { NodeName = Node, TlsDirectory = _folder }), time ?? TimeProvider.System);

    /// <summary>What a CA would send back for <paramref name="keys"/>, naming <paramref name="node"/>.</summary>
    private static NodeCertificates Issued(PendingKeys keys, CertificateAuthority authority, string node, string? qemuNode = null)
    {
        string Sign(string csr, X500DistinguishedName subject, string uri)
        {
            var key = CertificateRequest.LoadSigningRequestPem(csr, HashAlgorithmName.SHA256).PublicKey;
            using var certificate = authority.Issue(key, subject, uri, [], [IPAddress.Loopback], DateTimeOffset.UtcNow, TimeSpan.FromDays(1));
            return certificate.ExportCertificatePem();
        }
        return new NodeCertificates
        {
            NodeCertificate = Sign(keys.Requests.NodeCsr, CloudIdentity.NodeSubject(node), CloudIdentity.NodeUri(node)),
            QemuCertificate = Sign(keys.Requests.QemuCsr, CloudIdentity.QemuSubject(qemuNode ?? node), CloudIdentity.QemuUri(qemuNode ?? node)),
            CaCertificate = authority.CertificatePem(),
        };
    }

    private string FileIn(string name) => Path.Combine(_folder, name);

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void Save_keeps_the_nodes_own_certificates_with_private_keys_only_the_agent_reads()
    {
        var identity = Identity();
        using var keys = NodeIdentity.NewKeys(["127.0.0.1"]);

        var saved = identity.Save(Issued(keys, TestTrust.Shared.Authority, Node), keys);

        Assert.Same(saved, identity.Certificate);
        Assert.True(saved.HasPrivateKey);
        Assert.Equal(Node, CloudIdentity.NodeOf(saved));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(FileIn(CloudIdentity.NodeKeyFile)));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(FileIn(CloudIdentity.QemuKeyFile)));
        using var qemu = X509Certificate2.CreateFromPemFile(FileIn(CloudIdentity.QemuCertificateFile), FileIn(CloudIdentity.QemuKeyFile));
        Assert.Equal(CloudIdentity.QemuUri(Node), CloudIdentity.IdentityUriOf(qemu));
        // A restarted agent finds it again.
        using var loaded = Identity().LoadSaved();
        Assert.NotNull(loaded);
        Assert.Equal(saved.Thumbprint, loaded.Thumbprint);
    }

    public static TheoryData<string> Refusals => new() { "another node", "another node's qemu", "another CA", "not PEM", "other keys" };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void Save_refuses_what_is_not_this_nodes_from_its_CA_and_writes_nothing(string refusal)
    {
        var identity = Identity();
        using var keys = NodeIdentity.NewKeys(["127.0.0.1"]);
        using var otherKeys = NodeIdentity.NewKeys(["127.0.0.1"]);
        var stranger = TestTrust.NewStranger();
        var issued = refusal switch
        {
            "another node" => Issued(keys, TestTrust.Shared.Authority, "node-b"),
            "another node's qemu" => Issued(keys, TestTrust.Shared.Authority, Node, qemuNode: "node-b"),
            "another CA" => Issued(keys, stranger.Authority, Node),
            "not PEM" => new NodeCertificates { NodeCertificate = "garbage", QemuCertificate = "garbage" },
            // This node's names from its CA, but for keys the agent never made.
            _ => Issued(otherKeys, TestTrust.Shared.Authority, Node),
        };

        Assert.Throws<InvalidDataException>(() => identity.Save(issued, keys));

        Assert.Null(identity.Certificate);
        foreach (var file in new[] { CloudIdentity.NodeCertificateFile, CloudIdentity.NodeKeyFile, CloudIdentity.QemuCertificateFile, CloudIdentity.QemuKeyFile })
        {
            Assert.False(File.Exists(FileIn(file)), file);
        }
    }

    [Fact]
    public void LoadSaved_ignores_another_nodes_certificate_and_an_expired_one()
    {
        TestTrust.Shared.WriteNodeFolder(_folder, "node-b", IPAddress.Loopback);
        Assert.Null(Identity().LoadSaved());

        TestTrust.Shared.WriteNodeFolder(_folder, Node, IPAddress.Loopback);
        Assert.NotNull(Identity().LoadSaved());
        // Two days on, the one-day certificate has expired.
        var later = new ManualTimeProvider(DateTimeOffset.UtcNow.AddDays(2));
        Assert.Null(Identity(later).LoadSaved());
    }

    [Fact]
    public void Renewal_is_due_at_two_thirds_of_the_certificates_life()
    {
        TestTrust.Shared.WriteNodeFolder(_folder, Node, IPAddress.Loopback);
        using var certificate = Identity().LoadSaved()!;

        var due = CertificateAuthority.RenewalTime(certificate);

        var life = certificate.NotAfter.ToUniversalTime() - certificate.NotBefore.ToUniversalTime();
        Assert.Equal(certificate.NotBefore.ToUniversalTime() + life * 2 / 3, due.UtcDateTime);
    }

    [Fact]
    public async Task A_certificate_that_cannot_be_renewed_shows_in_readiness_and_once_expired_asks_for_a_join_token()
    {
        TestTrust.Shared.WriteNodeFolder(_folder, Node, IPAddress.Loopback);
        // 20 hours into the certificate's day: past its renewal time (16 h), before it expires.
        var time = new ManualTimeProvider(DateTimeOffset.UtcNow.AddHours(20));
        var identity = Identity(time);
        var options = Options.Create(new AgentOptions { NodeName = Node, TlsDirectory = _folder, Listen = "127.0.0.2:7070", ControllerUrl = "https://127.0.0.1:9" });
        // The controller's node port is down: nothing listens on the discard port.
        using var renewal = new CertificateRenewal(identity, options,
            new ConfigurationBuilder().Build(), time, NullLogger<CertificateRenewal>.Instance);
        var health = new CertificateHealthCheck(renewal);

        await renewal.StartAsync(CancellationToken.None);
        try
        {
            // It started with its saved certificate, with no join token and no controller.
            Assert.Equal(Node, CloudIdentity.NodeOf(identity.Certificate!));
            var failed = await ProblemAsync(renewal, p => p.StartsWith("Renewing the node certificate failed", StringComparison.Ordinal));
            var report = await health.CheckHealthAsync(new HealthCheckContext());
            Assert.Equal(HealthStatus.Unhealthy, report.Status);
            Assert.StartsWith("Renewing the node certificate failed", report.Description, StringComparison.Ordinal);

            // Five hours later it has expired; the next retry says what the operator must do.
            time.Advance(TimeSpan.FromHours(5));
            var expired = await ProblemAsync(renewal, p => p.StartsWith("The node certificate expired", StringComparison.Ordinal));
            Assert.Contains("join token", expired, StringComparison.Ordinal);
            Assert.Contains(Node, expired, StringComparison.Ordinal);
            Assert.NotEqual(failed, expired);
        }
        finally
        {
            await renewal.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Start_without_a_certificate_or_a_join_token_fails_naming_the_join_token()
    {
        var identity = Identity();
        var options = Options.Create(new AgentOptions { NodeName = Node, TlsDirectory = _folder, Listen = "127.0.0.2:7070", ControllerUrl = "https://127.0.0.1:9" });
        using var renewal = new CertificateRenewal(identity, options,
            new ConfigurationBuilder().Build(), TimeProvider.System, NullLogger<CertificateRenewal>.Instance);

        var error = await Assert.ThrowsAnyAsync<Exception>(() => renewal.StartAsync(CancellationToken.None));

        Assert.Contains("no join token", error.Message, StringComparison.Ordinal);
        Assert.Null(identity.Certificate);
    }

    private static async Task<string> ProblemAsync(CertificateRenewal renewal, Func<string, bool> match)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            if (renewal.Problem is { } problem && match(problem))
            {
                return problem;
            }
            await Task.Delay(50);
        }
        throw new TimeoutException($"The renewal's problem is still: {renewal.Problem ?? "(none)"}");
    }
}

/// <summary>Who a certificate from the cloud CA names, read from its URI subject alternative name.</summary>
public sealed class CloudIdentityTests
{
    [Fact]
    public void A_controller_certificate_from_the_CA_names_the_controller()
    {
        Assert.Equal(CloudIdentity.ControllerUri, CloudIdentity.IdentityUriOf(TestTrust.Shared.Controller));
        Assert.True(CloudIdentity.IsController(TestTrust.Shared.Controller));
        Assert.Null(CloudIdentity.NodeOf(TestTrust.Shared.Controller));
    }

    [Fact]
    public void Node_and_qemu_certificates_name_their_node_and_are_not_the_controller()
    {
        using var node = TestTrust.Shared.Node("node-x");
        using var qemu = TestTrust.Shared.Issue(CloudIdentity.QemuSubject("node-x"), CloudIdentity.QemuUri("node-x"), [IPAddress.Loopback]);

        Assert.Equal("node-x", CloudIdentity.NodeOf(node));
        Assert.False(CloudIdentity.IsController(node));
        Assert.Equal(CloudIdentity.QemuUri("node-x"), CloudIdentity.IdentityUriOf(qemu));
        Assert.Null(CloudIdentity.NodeOf(qemu));
        Assert.False(CloudIdentity.IsController(qemu));
    }
}
