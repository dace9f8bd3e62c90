using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cloud.Contracts.Node.V1;
using Cloud.Contracts.Trust;
using Microsoft.Extensions.Options;

namespace Cloud.Agent.Identity;

/// <summary>
/// This node's certificate and the cloud CA, from the node's TLS folder: what every TLS
/// connection of the agent presents, and what it checks the other side against. The CA is the
/// one the operator put in the folder (ca.pem), never one a controller sends: a node trusts
/// only what it was given.
/// </summary>
internal sealed class NodeIdentity(IOptions<AgentOptions> options, TimeProvider time)
{
    private X509Certificate2? _ca;
    private volatile X509Certificate2? _certificate;

    public string NodeName => options.Value.NodeName;

    private string Folder => options.Value.TlsDirectory;

    /// <summary>The cloud CA (ca.pem in the TLS folder).</summary>
    public X509Certificate2 Ca => _ca ??= LoadCa();

    /// <summary>The node's current certificate, with its key; null until the node has joined.</summary>
    public X509Certificate2? Certificate => _certificate;

    public DateTimeOffset Now => time.GetUtcNow();

    /// <summary>True when <paramref name="certificate"/> chains to the cloud CA and is valid now.</summary>
    public bool Verifies(X509Certificate2 certificate) => CertificateAuthority.Verifies(Ca, certificate, time.GetUtcNow().UtcDateTime);

    /// <summary>
    /// A handler for this agent's outgoing calls: presents the node's current certificate (none
    /// before it joined) and accepts only a server that chains to the CA and that
    /// <paramref name="expected"/> accepts (the controller, or another node).
    /// </summary>
    public SocketsHttpHandler NewHandler(Func<X509Certificate2, bool> expected) => new()
    {
        EnableMultipleHttp2Connections = true,
        // Made again now and then, so that a renewed certificate is presented.
        PooledConnectionLifetime = TimeSpan.FromMinutes(30),
        SslOptions = new SslClientAuthenticationOptions
        {
            LocalCertificateSelectionCallback = (_, _, _, _, _) => _certificate!,
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                certificate is X509Certificate2 presented && Verifies(presented) && expected(presented),
        },
    };

    /// <summary>The certificate saved in the TLS folder if it is this node's, from this CA, and valid for a while yet; otherwise null.</summary>
    public X509Certificate2? LoadSaved()
    {
        var certificatePath = Path.Combine(Folder, CloudIdentity.NodeCertificateFile);
        var keyPath = Path.Combine(Folder, CloudIdentity.NodeKeyFile);
        if (!File.Exists(certificatePath) || !File.Exists(keyPath))
        {
            return null;
        }
        X509Certificate2 certificate;
        try
        {
            certificate = Reloaded(X509Certificate2.CreateFromPemFile(certificatePath, keyPath));
        }
        catch (CryptographicException)
        {
            return null;
        }
        if (!Verifies(certificate) || CloudIdentity.NodeOf(certificate) != NodeName)
        {
            certificate.Dispose();
            return null;
        }
        return certificate;
    }

    public void Use(X509Certificate2 certificate) => _certificate = certificate;

    /// <summary>New keys for the node and for QEMU, and the requests that carry their public halves.</summary>
    public static PendingKeys NewKeys(IEnumerable<string> addresses)
    {
        var nodeKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var qemuKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var requests = new CertificateRequests
        {
            // The subject is the CA's to choose; the request carries the key and its proof.
            NodeCsr = new CertificateRequest("CN=request", nodeKey, HashAlgorithmName.SHA256).CreateSigningRequestPem(),
            QemuCsr = new CertificateRequest("CN=request", qemuKey, HashAlgorithmName.SHA256).CreateSigningRequestPem(),
        };
        requests.Addresses.AddRange(addresses);
        return new PendingKeys(requests, nodeKey, qemuKey);
    }

    /// <summary>
    /// Checks what the controller issued (this node's identity, from the CA, for these keys),
    /// writes it to the TLS folder (keys 0600, each file replaced whole) and starts using it.
    /// </summary>
    public X509Certificate2 Save(NodeCertificates issued, PendingKeys keys)
    {
        X509Certificate2 node, qemu;
        try
        {
            node = X509Certificate2.CreateFromPem(issued.NodeCertificate);
            qemu = X509Certificate2.CreateFromPem(issued.QemuCertificate);
        }
        catch (CryptographicException e)
        {
            throw new InvalidDataException($"The controller sent certificates that are not PEM: {e.Message}");
        }
        using (qemu)
        {
            if (!Verifies(node) || CloudIdentity.NodeOf(node) != NodeName
                || !Verifies(qemu) || CloudIdentity.IdentityUriOf(qemu) != CloudIdentity.QemuUri(NodeName))
            {
                throw new InvalidDataException($"The controller sent certificates that are not node {NodeName}'s from this node's CA ({Path.Combine(Folder, CloudIdentity.CaFile)}).");
            }
            using var nodeWithKey = WithKey(node, keys.NodeKey);
            using var qemuWithKey = WithKey(qemu, keys.QemuKey);
            WriteFile(CloudIdentity.QemuKeyFile, keys.QemuKey.ExportPkcs8PrivateKeyPem(), secret: true);
            WriteFile(CloudIdentity.QemuCertificateFile, qemu.ExportCertificatePem(), secret: false);
            WriteFile(CloudIdentity.NodeKeyFile, keys.NodeKey.ExportPkcs8PrivateKeyPem(), secret: true);
            WriteFile(CloudIdentity.NodeCertificateFile, node.ExportCertificatePem(), secret: false);
            var current = Reloaded(nodeWithKey);
            node.Dispose();
            Use(current);
            return current;
        }
    }

    /// <summary>The certificate with the key this node made for it; a certificate for another key is of no use to the node.</summary>
    private X509Certificate2 WithKey(X509Certificate2 certificate, ECDsa key)
    {
        try
        {
            return certificate.CopyWithPrivateKey(key);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"The controller sent certificates that are not for the keys node {NodeName} asked for: {e.Message}");
        }
    }

    // TLS on Linux wants a certificate whose key is not ephemeral: export and load again.
    private static X509Certificate2 Reloaded(X509Certificate2 certificate)
        => X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);

    private X509Certificate2 LoadCa()
    {
        var path = Path.Combine(Folder, CloudIdentity.CaFile);
        try
        {
            return X509Certificate2.CreateFromPem(File.ReadAllText(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new OptionsValidationException(AgentOptions.SectionName, typeof(AgentOptions),
                [$"The cloud CA is missing or unreadable at {path} ({e.Message}): copy the controller's ca.pem there before the agent starts."]);
        }
    }

    private void WriteFile(string name, string content, bool secret)
    {
        Directory.CreateDirectory(Folder);
        PemFiles.Write(Path.Combine(Folder, name), content, secret);
    }
}

/// <summary>Keys made for a join or a renewal, kept until the certificates for them arrive.</summary>
internal sealed record PendingKeys(CertificateRequests Requests, ECDsa NodeKey, ECDsa QemuKey) : IDisposable
{
    public void Dispose()
    {
        NodeKey.Dispose();
        QemuKey.Dispose();
    }
}
