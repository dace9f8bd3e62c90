using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Cloud.Cli;

/// <summary>
/// How cloudctl reaches the controller: https:// with the server's certificate checked as any TLS
/// client checks it (a chain to a trusted root, valid now, naming the host or IP address in the
/// URL), the trusted root being the cloud CA of <c>--ca-file</c> when one is given and the
/// system's trust store otherwise (an operator-provided public certificate). http:// only to
/// this machine (loopback), where the controller may serve the API without TLS.
/// </summary>
internal sealed class ControllerTls
{
    private readonly X509Certificate2Collection? _roots;
    private string? _refusal;

    private ControllerTls(Uri url, string? caFile, X509Certificate2Collection? roots)
    {
        Url = url;
        CaFile = caFile;
        _roots = roots;
    }

    public Uri Url { get; }

    public string? CaFile { get; }

    /// <summary>Checks the URL and reads the CA file; every mistake is a <see cref="CliException"/> naming what to change.</summary>
    public static ControllerTls For(string url, string? caFile)
    {
        var parsed = ParseUrl(url, "The controller URL");
        if (string.IsNullOrEmpty(caFile))
        {
            return new ControllerTls(parsed, null, null);
        }
        return new ControllerTls(parsed, caFile, ReadCaFile(caFile));
    }

    /// <summary>An absolute http(s) URL; http only when the host is loopback (127.0.0.0/8, ::1, localhost).</summary>
    public static Uri ParseUrl(string url, string what)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var parsed) || parsed.Scheme is not ("http" or "https"))
        {
            throw new CliException($"{what} '{url}' must be an https:// URL, such as https://controller.example:8080.");
        }
        if (parsed.Scheme == "http" && !IsLoopback(parsed.Host))
        {
            throw new CliException(
                $"{what} '{url}' is http:// to a host other than this machine: the token and the answers would cross the network in clear. " +
                "Use https:// (with --ca-file naming the cloud's CA, ca.pem, unless the controller has a publicly trusted certificate); http:// works only for loopback addresses.");
        }
        return parsed;
    }

    /// <summary>The certificates of a PEM file, at least one, each a CA.</summary>
    public static X509Certificate2Collection ReadCaFile(string caFile)
    {
        if (!File.Exists(caFile))
        {
            throw new CliException($"CA file '{caFile}' does not exist (--ca-file, CLOUDCTL_CA_FILE or the profile's caFile).");
        }
        var roots = new X509Certificate2Collection();
        try
        {
            roots.ImportFromPemFile(caFile);
        }
        catch (CryptographicException e)
        {
            throw new CliException($"CA file '{caFile}' is not a PEM certificate: {e.Message}");
        }
        if (roots.Count == 0)
        {
            throw new CliException($"CA file '{caFile}' holds no PEM certificate (-----BEGIN CERTIFICATE-----).");
        }
        foreach (var root in roots)
        {
            if (root.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is not { CertificateAuthority: true })
            {
                throw new CliException($"CA file '{caFile}' holds '{root.Subject}', which is not a certificate authority: give the CA's certificate (ca.pem), not the server's.");
            }
        }
        return roots;
    }

    /// <summary>A handler that checks the server's certificate; each HttpClient of one <see cref="ApiClient"/> gets its own.</summary>
    public SocketsHttpHandler NewHandler()
    {
        var ssl = new SslClientAuthenticationOptions
        {
            // Normal TLS checks (chain, dates, the name in the URL); the callback only remembers
            // why a certificate was refused, to say so.
            RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
            {
                if (errors != SslPolicyErrors.None)
                {
                    _refusal = Describe(certificate, chain, errors);
                }
                return errors == SslPolicyErrors.None;
            },
        };
        if (_roots is not null)
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(_roots);
            ssl.CertificateChainPolicy = policy;
        }
        return new SocketsHttpHandler { SslOptions = ssl, PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
    }

    /// <summary>The message for a request that failed: why the certificate was refused, when it was.</summary>
    public string DescribeFailure(HttpRequestException e)
        => _refusal is { } refusal
            ? $"The controller at {Url} is not trusted: {refusal}"
            : $"Cannot reach the controller at {Url}: {e.Message}";

    private string Describe(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        var subject = certificate?.Subject ?? "(none)";
        var reasons = new List<string>();
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            reasons.Add("it presented no certificate");
        }
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            reasons.Add($"its certificate ({subject}) does not name '{Url.Host}'; use a host name or address the certificate has (Trust:ControllerNames)");
        }
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors))
        {
            var status = chain?.ChainStatus.Aggregate(X509ChainStatusFlags.NoError, (all, s) => all | s.Status) ?? X509ChainStatusFlags.NoError;
            if (status.HasFlag(X509ChainStatusFlags.NotTimeValid))
            {
                reasons.Add($"its certificate ({subject}) has expired or is not valid yet");
            }
            if ((status & ~X509ChainStatusFlags.NotTimeValid) != X509ChainStatusFlags.NoError || status == X509ChainStatusFlags.NoError)
            {
                reasons.Add(CaFile is null
                    ? $"its certificate ({subject}, issued by {certificate?.Issuer}) does not chain to a root of the system's trust store; give the cloud's CA with --ca-file, CLOUDCTL_CA_FILE or the profile's caFile (cloudctl config set-profile NAME --ca-file ca.pem)"
                    : $"its certificate ({subject}, issued by {certificate?.Issuer}) is not issued by the CA in '{CaFile}' ({status})");
            }
        }
        return string.Join("; ", reasons) + ".";
    }

    private static bool IsLoopback(string host)
        => string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)
            || (IPAddress.TryParse(host.Trim('[', ']'), out var address) && IPAddress.IsLoopback(address));
}
