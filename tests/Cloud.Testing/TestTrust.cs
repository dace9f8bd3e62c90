using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cloud.Contracts.Trust;
using Grpc.Net.Client;

namespace Cloud.Testing;

/// <summary>
/// The tests' cloud CA, one per test process, and what tests make from it: the controller's CA
/// folder, nodes' TLS folders, certificates of any identity (the controller's, a node's, a
/// stranger's), and clients that trust the CA and present the certificate a test chooses.
/// </summary>
public sealed class TestTrust
{
    private static readonly Lazy<TestTrust> SharedTrust = new(() => new TestTrust("cloud-test-ca"));

    private TestTrust(string name)
    {
        Authority = CertificateAuthority.Create(name, DateTimeOffset.UtcNow, TimeSpan.FromDays(30));
        Controller = Issue(CloudIdentity.ControllerSubject, CloudIdentity.ControllerUri, [IPAddress.Loopback]);
    }

    public static TestTrust Shared => SharedTrust.Value;

    /// <summary>A CA that is not the cloud's, for refusals.</summary>
    public static TestTrust NewStranger() => new("stranger-ca");

    public CertificateAuthority Authority { get; }

    /// <summary>A certificate of the controller's identity, to call agents as the controller does.</summary>
    public X509Certificate2 Controller { get; }

    /// <summary>Writes the CA (ca.pem, ca.key) into <paramref name="folder"/>, as the controller's Trust:Directory.</summary>
    public void WriteCaFolder(string folder)
    {
        Directory.CreateDirectory(folder);
        PemFiles.Write(Path.Combine(folder, "ca.pem"), Authority.CertificatePem(), secret: false);
        PemFiles.Write(Path.Combine(folder, "ca.key"), Authority.KeyPem(), secret: true);
    }

    /// <summary>A node's TLS folder with only the CA in it: the node then joins with a join token.</summary>
    public void WriteNodeCa(string folder)
    {
        Directory.CreateDirectory(folder);
        PemFiles.Write(Path.Combine(folder, CloudIdentity.CaFile), Authority.CertificatePem(), secret: false);
    }

    /// <summary>A node's TLS folder with its certificates already issued, for an agent that runs without a controller.</summary>
    public void WriteNodeFolder(string folder, string node, params IPAddress[] addresses)
    {
        WriteNodeCa(folder);
        foreach (var (subject, uri, certificateFile, keyFile) in new[]
        {
            (CloudIdentity.NodeSubject(node), CloudIdentity.NodeUri(node), CloudIdentity.NodeCertificateFile, CloudIdentity.NodeKeyFile),
            (CloudIdentity.QemuSubject(node), CloudIdentity.QemuUri(node), CloudIdentity.QemuCertificateFile, CloudIdentity.QemuKeyFile),
        })
        {
            using var certificate = Issue(subject, uri, addresses);
            PemFiles.Write(Path.Combine(folder, certificateFile), certificate.ExportCertificatePem(), secret: false);
            PemFiles.Write(Path.Combine(folder, keyFile), certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem(), secret: true);
        }
    }

    /// <summary>A certificate with its key, naming <paramref name="identityUri"/>, valid from <paramref name="notBefore"/> (default now) for <paramref name="lifetime"/> (default a day).</summary>
    public X509Certificate2 Issue(X500DistinguishedName subject, string identityUri, IPAddress[] addresses, DateTimeOffset? notBefore = null, TimeSpan? lifetime = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var publicKey = new CertificateRequest(subject, key, HashAlgorithmName.SHA256).PublicKey;
        // Issue backdates by a minute; a test's "expired" certificate is made to end in the past.
        using var issued = Authority.Issue(publicKey, subject, identityUri, [], addresses, (notBefore ?? DateTimeOffset.UtcNow).AddMinutes(1), lifetime ?? TimeSpan.FromDays(1));
        return CertificateAuthority.WithKey(issued, key);
    }

    /// <summary>The controller's grant for node <paramref name="reader"/> to read VM <paramref name="vmId"/>'s snapshots from node <paramref name="holder"/>.</summary>
    public string SnapshotGrant(string reader, string holder, string vmId)
        => new PeerGrant(reader, holder, PeerGrant.VmKind, vmId, DateTimeOffset.UtcNow.AddHours(1)).Sign(Controller);

    /// <summary>A node's certificate, to call as that node.</summary>
    public X509Certificate2 Node(string node) => Issue(CloudIdentity.NodeSubject(node), CloudIdentity.NodeUri(node), [IPAddress.Loopback]);

    /// <summary>
    /// A handler that trusts this CA (any name in it: tests reach servers by address) and
    /// presents <paramref name="clientCertificate"/>, if any.
    /// </summary>
    public SocketsHttpHandler Handler(X509Certificate2? clientCertificate = null) => new()
    {
        SslOptions = new SslClientAuthenticationOptions
        {
            ClientCertificates = clientCertificate is null ? null : [clientCertificate],
            LocalCertificateSelectionCallback = clientCertificate is null ? null : (_, _, _, _, _) => clientCertificate,
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                certificate is X509Certificate2 presented && CertificateAuthority.Verifies(Authority.Certificate, presented, DateTime.UtcNow),
        },
    };

    public GrpcChannel Channel(Uri url, X509Certificate2? clientCertificate = null)
        => GrpcChannel.ForAddress(url, new GrpcChannelOptions { HttpHandler = Handler(clientCertificate) });

    /// <summary>A new empty folder under /tmp for a test's TLS files.</summary>
    public static string NewFolder(string prefix) => Directory.CreateTempSubdirectory(prefix + "-").FullName;
}
