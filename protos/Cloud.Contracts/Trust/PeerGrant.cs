using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Cloud.Contracts.Trust;

/// <summary>
/// The controller's word that node <see cref="Peer"/> may read one VM's snapshots (or one image)
/// from node <see cref="Holder"/> until <see cref="Expires"/>. Agents read from each other only
/// what a move or an image copy needs, and only when the controller said so: the holder answers
/// a node's read only with a grant for that node and that resource, and the reader knows from the
/// grant which node it must be talking to. Signed with the controller's certificate key, which
/// travels in the grant, so any node checks it against the cloud CA with nothing shared.
/// </summary>
public sealed record PeerGrant(string Peer, string Holder, string Kind, string Resource, DateTimeOffset Expires)
{
    public const string Header = "cloud-peer-grant";
    public const string VmKind = "vm";
    public const string ImageKind = "image";
    private const string Version = "v1";
    private const int MaxChars = 8 * 1024;

    /// <summary>Signs the grant with <paramref name="controller"/>'s key: payload.signature.certificate, each base64url.</summary>
    public string Sign(X509Certificate2 controller)
    {
        var payload = Encoding.UTF8.GetBytes(string.Join('|', Version, Peer, Holder, Kind, Resource, Expires.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)));
        using var key = controller.GetECDsaPrivateKey() ?? throw new InvalidOperationException("The controller's certificate has no ECDSA key.");
        return string.Join('.', Base64Url(payload), Base64Url(key.SignData(payload, HashAlgorithmName.SHA256)), Base64Url(controller.RawData));
    }

    /// <summary>
    /// The grant in <paramref name="text"/> if it is well formed, signed by a controller
    /// certificate that <paramref name="trusted"/> accepts (chains to the cloud CA, valid now),
    /// and not expired at <paramref name="now"/>; otherwise null and why.
    /// </summary>
    public static PeerGrant? Verify(string? text, Func<X509Certificate2, bool> trusted, DateTimeOffset now, out string problem)
    {
        problem = "";
        var parts = text is { Length: > 0 and <= MaxChars } ? text.Split('.') : [];
        if (parts.Length != 3 || FromBase64Url(parts[0]) is not { } payload || FromBase64Url(parts[1]) is not { } signature || FromBase64Url(parts[2]) is not { } der)
        {
            problem = "No grant from the controller, or a malformed one.";
            return null;
        }
        X509Certificate2 signer;
        try
        {
            signer = X509CertificateLoader.LoadCertificate(der);
        }
        catch (CryptographicException)
        {
            problem = "The grant's certificate is not one.";
            return null;
        }
        using (signer)
        {
            using var key = signer.GetECDsaPublicKey();
            if (!CloudIdentity.IsController(signer) || !trusted(signer) || key is null || !key.VerifyData(payload, signature, HashAlgorithmName.SHA256))
            {
                problem = "The grant is not signed by the cloud's controller.";
                return null;
            }
        }
        var fields = Encoding.UTF8.GetString(payload).Split('|');
        if (fields.Length != 6 || fields[0] != Version || !long.TryParse(fields[5], NumberStyles.None, CultureInfo.InvariantCulture, out var expires))
        {
            problem = "The grant's content is malformed.";
            return null;
        }
        var grant = new PeerGrant(fields[1], fields[2], fields[3], fields[4], DateTimeOffset.FromUnixTimeSeconds(expires));
        if (grant.Expires <= now)
        {
            problem = $"The grant expired at {grant.Expires:u}.";
            return null;
        }
        return grant;
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static byte[]? FromBase64Url(string text)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        padded += new string('=', (4 - padded.Length % 4) % 4);
        try
        {
            return Convert.FromBase64String(padded);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
