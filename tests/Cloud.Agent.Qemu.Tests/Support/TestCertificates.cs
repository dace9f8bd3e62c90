using System.Net;
using System.Security.Cryptography;
using Cloud.Contracts.Trust;

namespace Cloud.Agent.Qemu.Tests.Support;

/// <summary>
/// A cloud CA of a test's own and the TLS folders it issues, laid out as a node's
/// Agent:Tls:Directory: ca.pem, qemu.pem and qemu.key (CloudIdentity's names), the QEMU
/// certificate naming its node and carrying the node's migration address as IP SAN.
/// </summary>
internal sealed class TestCertificates : IDisposable
{
    private readonly CertificateAuthority _ca = CertificateAuthority.Create("test-cloud", DateTimeOffset.UtcNow, TimeSpan.FromDays(1));

    public string Root { get; } = Path.Combine("/tmp", "cqc-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>A node's TLS folder with a QEMU certificate for <paramref name="certifiedNode"/> at <paramref name="address"/>.</summary>
    public string NodeFolder(string certifiedNode, string address)
    {
        var folder = Path.Combine(Root, certifiedNode + "-" + Guid.NewGuid().ToString("N")[..4]);
        Directory.CreateDirectory(folder);
        File.SetUnixFileMode(Root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var publicKey = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=request", key, HashAlgorithmName.SHA256).PublicKey;
        using var certificate = _ca.Issue(publicKey, CloudIdentity.QemuSubject(certifiedNode), CloudIdentity.QemuUri(certifiedNode),
            [], [IPAddress.Parse(address)], DateTimeOffset.UtcNow, TimeSpan.FromHours(2));
        File.WriteAllText(Path.Combine(folder, CloudIdentity.CaFile), _ca.CertificatePem());
        File.WriteAllText(Path.Combine(folder, CloudIdentity.QemuCertificateFile), certificate.ExportCertificatePem());
        File.WriteAllText(Path.Combine(folder, CloudIdentity.QemuKeyFile), key.ExportPkcs8PrivateKeyPem());
        return folder;
    }

    /// <summary>
    /// The same certificate as a QEMU client folder (ca-cert.pem, client-cert.pem,
    /// client-key.pem), for qemu-img to knock on an NBD export with.
    /// </summary>
    public static string ClientFolder(string nodeFolder)
    {
        var folder = nodeFolder + "-client";
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(nodeFolder, CloudIdentity.CaFile), Path.Combine(folder, "ca-cert.pem"));
        File.Copy(Path.Combine(nodeFolder, CloudIdentity.QemuCertificateFile), Path.Combine(folder, "client-cert.pem"));
        File.Copy(Path.Combine(nodeFolder, CloudIdentity.QemuKeyFile), Path.Combine(folder, "client-key.pem"));
        return folder;
    }

    public void Dispose()
    {
        _ca.Dispose();
        if (Directory.Exists(Root))
        {
            Directory.Delete(Root, recursive: true);
        }
    }
}
