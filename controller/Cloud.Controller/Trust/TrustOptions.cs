namespace Cloud.Controller.Trust;

/// <summary>The cloud's CA, the certificates it issues and TLS on the controller's ports. Section "Trust".</summary>
public sealed class TrustOptions
{
    public const string SectionName = "Trust";

    /// <summary>Folder of the CA: ca.pem and ca.key (0600). Every controller replica reads the same files.</summary>
    public string Directory { get; set; } = Path.Combine(".cloud", "trust");

    /// <summary>
    /// Create the CA in <see cref="Directory"/> when it holds none. The dev cloud and the tests
    /// do; production gives the controller its CA (docs/security.md), so that two replicas never
    /// make two.
    /// </summary>
    public bool CreateCa { get; set; }

    /// <summary>
    /// Lifetime of node and controller certificates, 1 minute (renewal drills) to 30 days.
    /// Default 1 day; each is renewed at two thirds of its life.
    /// </summary>
    public TimeSpan CertificateLifetime { get; set; } = TimeSpan.FromDays(1);

    /// <summary>How long a join token may be used when its creator does not say. Default 1 hour.</summary>
    public TimeSpan JoinTokenLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Names and IP addresses the controller is reached by, put into its certificate besides the
    /// addresses it listens on. Default: localhost.
    /// </summary>
    public List<string> ControllerNames { get; set; } = ["localhost"];

    /// <summary>
    /// The public API's certificate and key (PEM), when the operator provides one (say, from a
    /// public CA); otherwise the API serves the controller's certificate from the cloud CA.
    /// </summary>
    public string? ApiCertificateFile { get; set; }

    public string? ApiKeyFile { get; set; }

    /// <summary>
    /// Serve the public REST and gRPC ports without TLS. Refused unless they listen on loopback;
    /// the node port is never plaintext.
    /// </summary>
    public bool PlaintextApi { get; set; }
}
