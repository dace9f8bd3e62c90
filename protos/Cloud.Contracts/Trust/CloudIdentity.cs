using System.Formats.Asn1;
using System.Security.Cryptography.X509Certificates;

namespace Cloud.Contracts.Trust;

/// <summary>
/// Who is who in the cloud's certificates. Every certificate the cloud CA issues names exactly one
/// identity in a URI subject alternative name: the controller, a node's agent, or a node's QEMU
/// (the certificate QEMU uses for live migration and NBD). Authorization reads that URI and never
/// the subject, so a QEMU certificate, which guest processes can read, never passes as its node.
/// </summary>
public static class CloudIdentity
{
    public const string ControllerUri = "cloud://controller";
    private const string NodePrefix = "cloud://node/";
    private const string QemuPrefix = "cloud://qemu/";

    /// <summary>Files in a node's TLS folder (Agent:Tls:Directory), all PEM.</summary>
    public const string CaFile = "ca.pem";
    public const string NodeCertificateFile = "node.pem";
    public const string NodeKeyFile = "node.key";
    public const string QemuCertificateFile = "qemu.pem";
    public const string QemuKeyFile = "qemu.key";

    public static string NodeUri(string node) => NodePrefix + node;

    public static string QemuUri(string node) => QemuPrefix + node;

    /// <summary>The subject of node <paramref name="node"/>'s agent certificate.</summary>
    public static X500DistinguishedName NodeSubject(string node) => new($"CN={node}, O=cloud-node");

    /// <summary>
    /// The subject of node <paramref name="node"/>'s QEMU certificate. QEMU's tls-authz compares
    /// the peer's distinguished name, so this is the name a migration admits.
    /// </summary>
    public static X500DistinguishedName QemuSubject(string node) => new($"CN={node}, O=cloud-qemu");

    public static X500DistinguishedName ControllerSubject { get; } = new("CN=cloud-controller, O=cloud-controller");

    /// <summary>The node an agent certificate speaks for, or null when it is not an agent's.</summary>
    public static string? NodeOf(X509Certificate2 certificate)
        => IdentityUriOf(certificate) is { } uri && uri.StartsWith(NodePrefix, StringComparison.Ordinal) ? uri[NodePrefix.Length..] : null;

    public static bool IsController(X509Certificate2 certificate) => IdentityUriOf(certificate) == ControllerUri;

    /// <summary>The one cloud:// URI in the certificate's subject alternative names; null when there is none or more than one.</summary>
    public static string? IdentityUriOf(X509Certificate2 certificate)
    {
        string? found = null;
        foreach (var extension in certificate.Extensions)
        {
            if (extension.Oid?.Value != "2.5.29.17")
            {
                continue;
            }
            foreach (var uri in UrisIn(extension.RawData))
            {
                if (!uri.StartsWith("cloud://", StringComparison.Ordinal))
                {
                    continue;
                }
                if (found is not null)
                {
                    return null;
                }
                found = uri;
            }
        }
        return found;
    }

    // SubjectAlternativeNameBuilder.AddUri writes Uri.AbsoluteUri, which gives a URI of an
    // authority alone the path "/": cloud://controller is written cloud://controller/. Both name
    // the same identity; the form without the slash is the one compared.
    private static string WithoutEmptyPath(string uri)
    {
        var authority = uri.IndexOf("://", StringComparison.Ordinal);
        return authority >= 0 && uri.EndsWith('/') && uri.IndexOf('/', authority + 3) == uri.Length - 1 ? uri[..^1] : uri;
    }

    // GeneralNames ::= SEQUENCE OF GeneralName; uniformResourceIdentifier is [6] IA5String (RFC 5280 4.2.1.6).
    private static List<string> UrisIn(byte[] subjectAltName)
    {
        var uris = new List<string>();
        try
        {
            var names = new AsnReader(subjectAltName, AsnEncodingRules.DER).ReadSequence();
            while (names.HasData)
            {
                var tag = names.PeekTag();
                if (tag.TagClass == TagClass.ContextSpecific && tag.TagValue == 6)
                {
                    uris.Add(WithoutEmptyPath(names.ReadCharacterString(UniversalTagNumber.IA5String, new Asn1Tag(TagClass.ContextSpecific, 6))));
                }
                else
                {
                    names.ReadEncodedValue();
                }
            }
        }
        catch (AsnContentException)
        {
            // A malformed extension names nobody.
            uris.Clear();
        }
        return uris;
    }
}
