using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Cloud.Grpc.Benchmarks;

/// <summary>
/// The benchmark's cloud CA, made at start: a node TLS folder for each agent it starts (the CA,
/// the node's and QEMU's certificates, as a node that joined has them) and the controller's
/// certificate, which the client presents, as the controller does. Measuring code, shared by both
/// builds of <c>deploy/dev/bench.sh grpc</c>, so it uses the base class library only (a baseline
/// revision's contracts may predate the cloud's CA); the names follow Cloud.Contracts.Trust.
/// </summary>
internal sealed class BenchTrust
{
    private static readonly Lazy<BenchTrust> SharedTrust = new(() => new BenchTrust());

    private readonly ECDsa _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    private BenchTrust()
    {
        var request = new CertificateRequest("CN=bench-ca, O=cloud-ca", _caKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        using var selfSigned = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(7));
        Ca = X509CertificateLoader.LoadCertificate(selfSigned.Export(X509ContentType.Cert));
        Controller = Issue("CN=cloud-controller, O=cloud-controller", "cloud://controller", IPAddress.Loopback);
    }

    public static BenchTrust Shared => SharedTrust.Value;

    public X509Certificate2 Ca { get; }

    /// <summary>The controller's identity (cloud://controller), which may call every agent method.</summary>
    public X509Certificate2 Controller { get; }

    /// <summary>
    /// True when the agent of the tree at <paramref name="repository"/> listens with mutual TLS
    /// (it has a node identity); a baseline from before the cloud's CA listens in plaintext.
    /// </summary>
    public static bool AgentUsesTls(string repository)
        => File.Exists(Path.Combine(repository, "agent", "Cloud.Agent", "Identity", "NodeIdentity.cs"));

    /// <summary>Writes node <paramref name="node"/>'s TLS folder (Agent:TlsDirectory): ca.pem, node.pem/key, qemu.pem/key.</summary>
    public void WriteNodeFolder(string folder, string node, IPAddress address)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "ca.pem"), Ca.ExportCertificatePem());
        foreach (var (subject, uri, name) in new[] { ($"CN={node}, O=cloud-node", "cloud://node/" + node, "node"), ($"CN={node}, O=cloud-qemu", "cloud://qemu/" + node, "qemu") })
        {
            using var certificate = Issue(subject, uri, address);
            File.WriteAllText(Path.Combine(folder, name + ".pem"), certificate.ExportCertificatePem());
            var key = Path.Combine(folder, name + ".key");
            File.WriteAllText(key, "");
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
            File.WriteAllText(key, certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        }
    }

    /// <summary>Client TLS options that present the controller's certificate and accept only a server from this CA.</summary>
    public SslClientAuthenticationOptions ClientOptions() => new()
    {
        ClientCertificates = [Controller],
        LocalCertificateSelectionCallback = (_, _, _, _, _) => Controller,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is X509Certificate2 presented && Verifies(presented),
    };

    private bool Verifies(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    private X509Certificate2 Issue(string subject, string identityUri, IPAddress address)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddUri(new Uri(identityUri));
        names.AddIpAddress(address);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Ca, true, false));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var issued = request.Create(Ca.SubjectName, X509SignatureGenerator.CreateForECDsa(_caKey), DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        // TLS on Linux wants a certificate whose key is not ephemeral: export and load again.
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }
}
