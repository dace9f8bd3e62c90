using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cloud.Contracts.Trust;
using Cloud.Controller.Hosting;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Trust;

/// <summary>
/// The controller's side of the cloud CA: the root, the controller's own certificate (served on
/// every port, and presented to agents as a client), and checks of certificates others present.
/// The controller's certificate is issued by the local CA at start and again when two thirds of
/// its life have passed, so that it never expires under a running controller.
/// </summary>
internal sealed class ControllerCertificates : IDisposable
{
    public const string CaCertificateFile = "ca.pem";
    public const string CaKeyFile = "ca.key";

    private readonly CertificateAuthority _ca;
    private readonly TrustOptions _options;
    private readonly TimeProvider _time;
    private readonly IReadOnlyList<string> _dnsNames;
    private readonly IReadOnlyList<IPAddress> _addresses;
    private readonly X509Certificate2? _apiCertificate;
    private readonly Lock _renewal = new();
    private X509Certificate2 _own;

    public ControllerCertificates(IOptions<TrustOptions> options, IOptions<ControllerOptions> controller, TimeProvider time)
    {
        _options = options.Value;
        _time = time;
        _ca = LoadOrCreateCa(_options, time);
        var listens = new[] { controller.Value.RestListen, controller.Value.GrpcListen, controller.Value.NodeListen };
        _addresses = [.. listens.Select(l => IPEndPoint.Parse(l).Address)
            .Concat(_options.ControllerNames.Select(n => IPAddress.TryParse(n, out var a) ? a : null).OfType<IPAddress>())
            .Where(a => !a.Equals(IPAddress.Any) && !a.Equals(IPAddress.IPv6Any)).Distinct()];
        _dnsNames = [.. _options.ControllerNames.Where(n => !IPAddress.TryParse(n, out _)).Distinct(StringComparer.OrdinalIgnoreCase)];
        _own = IssueOwn();
        _apiCertificate = _options.ApiCertificateFile is { Length: > 0 } file
            ? X509Certificate2.CreateFromPemFile(file, _options.ApiKeyFile)
            : null;
    }

    /// <summary>The root every party trusts.</summary>
    public X509Certificate2 Ca => _ca.Certificate;

    public string CaPem => _ca.CertificatePem();

    /// <summary>The controller's certificate, renewed when two thirds of its life have passed.</summary>
    public X509Certificate2 Own
    {
        get
        {
            var current = _own;
            if (_time.GetUtcNow() < CertificateAuthority.RenewalTime(current))
            {
                return current;
            }
            lock (_renewal)
            {
                if (_time.GetUtcNow() >= CertificateAuthority.RenewalTime(_own))
                {
                    // The old one is not disposed: connections made with it may still use it.
                    _own = IssueOwn();
                }
                return _own;
            }
        }
    }

    /// <summary>What the public REST and gRPC ports serve: the operator's certificate, or the controller's own.</summary>
    public X509Certificate2 Api => _apiCertificate ?? Own;

    /// <summary>True when <paramref name="certificate"/> chains to the cloud CA and is valid now.</summary>
    public bool Verifies(X509Certificate2 certificate) => CertificateAuthority.Verifies(_ca.Certificate, certificate, _time.GetUtcNow().UtcDateTime);

    /// <summary>Signs a certificate for a node's key (see <see cref="NodeCertificateIssuer"/>).</summary>
    public X509Certificate2 Issue(PublicKey key, X500DistinguishedName subject, string identityUri, IEnumerable<IPAddress> addresses)
        => _ca.Issue(key, subject, identityUri, [], addresses, _time.GetUtcNow(), _options.CertificateLifetime);

    private X509Certificate2 IssueOwn()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var issued = _ca.Issue(new CertificateRequest(CloudIdentity.ControllerSubject, key, HashAlgorithmName.SHA256).PublicKey,
            CloudIdentity.ControllerSubject, CloudIdentity.ControllerUri, _dnsNames, _addresses, _time.GetUtcNow(), _options.CertificateLifetime);
        return CertificateAuthority.WithKey(issued, key);
    }

    private static CertificateAuthority LoadOrCreateCa(TrustOptions options, TimeProvider time)
    {
        var certificatePath = Path.Combine(options.Directory, CaCertificateFile);
        var keyPath = Path.Combine(options.Directory, CaKeyFile);
        if (File.Exists(certificatePath) || File.Exists(keyPath))
        {
            try
            {
                return CertificateAuthority.Load(File.ReadAllText(certificatePath), File.ReadAllText(keyPath));
            }
            catch (Exception e) when (e is IOException or CryptographicException or UnauthorizedAccessException)
            {
                throw new OptionsValidationException(TrustOptions.SectionName, typeof(TrustOptions),
                    [$"The CA in {options.Directory} cannot be loaded ({CaCertificateFile} and {CaKeyFile}, PEM, the key the certificate's): {e.Message}"]);
            }
        }
        if (!options.CreateCa)
        {
            throw new OptionsValidationException(TrustOptions.SectionName, typeof(TrustOptions),
                [$"No CA in {options.Directory}: give the controller one ({CaCertificateFile}, {CaKeyFile}) or set Trust:CreateCa=true to make it there."]);
        }
        var ca = CertificateAuthority.Create("cloud-ca", time.GetUtcNow(), TimeSpan.FromDays(3650));
        System.IO.Directory.CreateDirectory(options.Directory);
        PemFiles.Write(keyPath, ca.KeyPem(), secret: true);
        PemFiles.Write(certificatePath, ca.CertificatePem(), secret: false);
        return ca;
    }


    public void Dispose()
    {
        _ca.Dispose();
        _own.Dispose();
        _apiCertificate?.Dispose();
    }
}
