using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Cloud.Contracts.Trust;

/// <summary>
/// The cloud's certificate authority: a self-signed ECDSA P-256 root that signs the controller's,
/// the agents' and QEMU's certificates. What goes into a certificate (subject, identity URI,
/// addresses, lifetime) is always the authority's choice, never the requester's: a request only
/// contributes its public key.
/// </summary>
public sealed class CertificateAuthority : IDisposable
{
    private readonly ECDsa _key;

    private CertificateAuthority(X509Certificate2 certificate, ECDsa key)
    {
        Certificate = certificate;
        _key = key;
    }

    /// <summary>The root certificate, public part only: what every party trusts.</summary>
    public X509Certificate2 Certificate { get; }

    public static CertificateAuthority Create(string name, DateTimeOffset now, TimeSpan lifetime)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={name}, O=cloud-ca"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        using var selfSigned = request.CreateSelfSigned(now.AddMinutes(-5), now + lifetime);
        return new CertificateAuthority(X509CertificateLoader.LoadCertificate(selfSigned.Export(X509ContentType.Cert)), key);
    }

    /// <summary>Loads a root from PEM files; the key must be the certificate's.</summary>
    public static CertificateAuthority Load(string certificatePem, string keyPem)
    {
        var certificate = X509Certificate2.CreateFromPem(certificatePem);
        var key = ECDsa.Create();
        key.ImportFromPem(keyPem);
        using var check = certificate.CopyWithPrivateKey(key);
        var basic = certificate.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault();
        if (basic is not { CertificateAuthority: true })
        {
            throw new CryptographicException("The CA certificate is not a certificate authority (basic constraints).");
        }
        return new CertificateAuthority(certificate, key);
    }

    public string CertificatePem() => Certificate.ExportCertificatePem();

    public string KeyPem() => _key.ExportPkcs8PrivateKeyPem();

    /// <summary>
    /// Signs a certificate for <paramref name="publicKey"/> naming one identity
    /// (<see cref="CloudIdentity"/>), usable for both ends of TLS.
    /// </summary>
    public X509Certificate2 Issue(PublicKey publicKey, X500DistinguishedName subject, string identityUri,
        IEnumerable<string> dnsNames, IEnumerable<IPAddress> addresses, DateTimeOffset now, TimeSpan lifetime)
    {
        var request = new CertificateRequest(subject, publicKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddUri(new Uri(identityUri));
        foreach (var dns in dnsNames)
        {
            names.AddDnsName(dns);
        }
        foreach (var address in addresses)
        {
            names.AddIpAddress(address);
        }
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(publicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, true, false));
        var notAfter = now + lifetime;
        if (notAfter > Certificate.NotAfter)
        {
            notAfter = Certificate.NotAfter;
        }
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        // Valid from a minute ago: a peer whose clock is a little behind still takes it.
        return request.Create(Certificate.SubjectName, X509SignatureGenerator.CreateForECDsa(_key), now.AddMinutes(-1), notAfter, serial);
    }

    /// <summary>
    /// Whether <paramref name="certificate"/> was signed by this root and is valid at
    /// <paramref name="now"/>. The system's trust store plays no part.
    /// </summary>
    public static bool Verifies(X509Certificate2 root, X509Certificate2 certificate, DateTime now)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = now;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        return chain.Build(certificate);
    }

    /// <summary>When a certificate is due for renewal: at two thirds of its life, on every side.</summary>
    public static DateTimeOffset RenewalTime(X509Certificate2 certificate)
    {
        var notBefore = new DateTimeOffset(certificate.NotBefore.ToUniversalTime());
        var notAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime());
        return notBefore + (notAfter - notBefore) * 2 / 3;
    }

    /// <summary>
    /// <paramref name="certificate"/> with <paramref name="key"/>, exported and loaded again:
    /// TLS on Linux wants a certificate whose key is not ephemeral.
    /// </summary>
    public static X509Certificate2 WithKey(X509Certificate2 certificate, ECDsa key)
    {
        using var withKey = certificate.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    public void Dispose()
    {
        _key.Dispose();
        Certificate.Dispose();
    }
}
