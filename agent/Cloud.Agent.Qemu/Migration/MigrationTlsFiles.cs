using System.Text;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Trust;

namespace Cloud.Agent.Qemu;

/// <summary>
/// The node's QEMU certificate, laid out the way QEMU's tls-creds-x509 reads a folder
/// (ca-cert.pem, server-cert.pem/server-key.pem, client-cert.pem/client-key.pem), and the
/// identity QEMU's tls-authz compares a peer's certificate with.
/// </summary>
internal static class MigrationTlsFiles
{
    /// <summary>
    /// RFC 7919's ffdhe2048 group as PKCS#3 PEM. A QEMU 7.2 server endpoint without a
    /// dh-params.pem generates 2048-bit DH parameters when its object is made: 0.4 to 0.6 s of
    /// CPU on every migration's prepare, for parameters TLS 1.3 with ECDHE never uses. A
    /// standard, public group costs nothing to load and is as safe as any generated one.
    /// </summary>
    private const string Ffdhe2048 = """
        -----BEGIN DH PARAMETERS-----
        MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
        +8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
        87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
        YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
        7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
        ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
        -----END DH PARAMETERS-----

        """;

    /// <summary>Checks the node's TLS folder and copies its QEMU certificate into <paramref name="folder"/> (made 0700, files 0600); the paths written, folder first.</summary>
    public static IReadOnlyList<string> Write(string tlsDirectory, string folder)
    {
        var ca = Read(tlsDirectory, CloudIdentity.CaFile);
        var certificate = Read(tlsDirectory, CloudIdentity.QemuCertificateFile);
        var key = Read(tlsDirectory, CloudIdentity.QemuKeyFile);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(folder);
        }
        else
        {
            Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        var written = new List<string> { folder };
        // The same certificate serves both ends: its extended key usage names server and client.
        foreach (var (name, content) in new[]
        {
            ("ca-cert.pem", ca), ("server-cert.pem", certificate), ("server-key.pem", key), ("client-cert.pem", certificate), ("client-key.pem", key),
            ("dh-params.pem", Encoding.ASCII.GetBytes(Ffdhe2048)),
        })
        {
            var path = Path.Combine(folder, name);
            using (var file = OperatingSystem.IsWindows()
                ? new FileStream(path, FileMode.CreateNew, FileAccess.Write)
                : new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
            {
                file.Write(content);
            }
            written.Add(path);
        }
        return written;
    }

    /// <summary>
    /// The distinguished name of node <paramref name="peerNode"/>'s QEMU certificate as QEMU's
    /// tls-authz sees it: gnutls (3.7, under QEMU 7.2) writes the attributes in the order the
    /// certificate encodes them, comma-separated with no spaces: "O=cloud-qemu,CN=node-b". The
    /// migration tests check this against a real QEMU, admitting one node and refusing another.
    /// </summary>
    public static string AuthzIdentity(string peerNode)
    {
        var parts = new List<string>();
        foreach (var rdn in CloudIdentity.QemuSubject(peerNode).EnumerateRelativeDistinguishedNames(reversed: false))
        {
            var type = rdn.GetSingleElementType().Value switch
            {
                "2.5.4.3" => "CN",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                var other => throw new InvalidOperationException($"No gnutls name for attribute {other} of the QEMU subject."),
            };
            parts.Add(type + "=" + rdn.GetSingleElementValue());
        }
        return string.Join(',', parts);
    }

    private static byte[] Read(string tlsDirectory, string name)
    {
        var path = Path.Combine(tlsDirectory, name);
        try
        {
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length == 0 || !Encoding.ASCII.GetString(bytes).Contains("-----BEGIN ", StringComparison.Ordinal))
            {
                throw new HypervisorException(HypervisorError.FailedPrecondition, $"{path} is not a PEM file ({QemuOptions.SectionName}:TlsDirectory).");
            }
            return bytes;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new HypervisorException(HypervisorError.FailedPrecondition,
                $"QEMU migrates over TLS ({QemuOptions.SectionName}:TlsDirectory is {tlsDirectory}) but {path} cannot be read: {ex.Message}", ex);
        }
    }
}
