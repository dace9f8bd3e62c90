using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cloud.Contracts.Node.V1;
using Cloud.Contracts.Trust;
using Grpc.Core;
using Npgsql;

namespace Cloud.Controller.Trust;

/// <summary>
/// Turns a node's certificate requests into its two certificates (agent and QEMU) and records
/// them, so that deleting the node revokes them. The requests are checked (PEM, signature, key
/// type) and contribute their public keys only: the subject, the identity and the lifetime are
/// the CA's; the addresses are the node's own, never one another node registered.
/// </summary>
internal sealed class NodeCertificateIssuer(ControllerCertificates certificates, NpgsqlDataSource dataSource, TimeProvider time)
{
    private const int MaxAddresses = 4;
    private const int MaxCsrChars = 8 * 1024;

    public async Task<NodeCertificates> IssueAsync(string node, CertificateRequests requests, CancellationToken cancellationToken)
    {
        var nodeKey = PublicKeyOf(requests.NodeCsr, "node_csr");
        var qemuKey = PublicKeyOf(requests.QemuCsr, "qemu_csr");
        var addresses = await OwnAddressesAsync(node, requests.Addresses, cancellationToken);
        using var nodeCertificate = certificates.Issue(nodeKey, CloudIdentity.NodeSubject(node), CloudIdentity.NodeUri(node), addresses);
        using var qemuCertificate = certificates.Issue(qemuKey, CloudIdentity.QemuSubject(node), CloudIdentity.QemuUri(node), addresses);
        await using (var batch = dataSource.CreateBatch())
        {
            foreach (var (certificate, kind) in new[] { (nodeCertificate, "node"), (qemuCertificate, "qemu") })
            {
                var command = new NpgsqlBatchCommand(
                    "INSERT INTO node_certificates (serial, node_name, kind, issued_at, not_after) VALUES ($1, $2, $3, $4, $5)");
                command.Parameters.Add(new() { Value = certificate.SerialNumber });
                command.Parameters.Add(new() { Value = node });
                command.Parameters.Add(new() { Value = kind });
                command.Parameters.Add(new() { Value = time.GetUtcNow() });
                command.Parameters.Add(new() { Value = new DateTimeOffset(certificate.NotAfter.ToUniversalTime()) });
                batch.BatchCommands.Add(command);
            }
            await batch.ExecuteNonQueryAsync(cancellationToken);
        }
        return new NodeCertificates
        {
            NodeCertificate = nodeCertificate.ExportCertificatePem(),
            QemuCertificate = qemuCertificate.ExportCertificatePem(),
            CaCertificate = certificates.CaPem,
        };
    }

    private static PublicKey PublicKeyOf(string pem, string field)
    {
        if (pem.Length is 0 or > MaxCsrChars)
        {
            throw Invalid($"{field} must be a PEM certificate request of at most {MaxCsrChars} characters.");
        }
        CertificateRequest request;
        try
        {
            // Checks the request's own signature: its sender holds the key.
            request = CertificateRequest.LoadSigningRequestPem(pem, HashAlgorithmName.SHA256, CertificateRequestLoadOptions.Default);
        }
        catch (CryptographicException e)
        {
            throw Invalid($"{field} is not a valid, signed certificate request: {e.Message}");
        }
        if (request.PublicKey.Oid.Value != "1.2.840.10045.2.1" || request.PublicKey.GetECDsaPublicKey() is not { KeySize: >= 256 })
        {
            throw Invalid($"{field} must carry an ECDSA key of at least 256 bits.");
        }
        return request.PublicKey;
    }

    /// <summary>Literal IP addresses, at most four, none of them the registered address of another node.</summary>
    private async Task<List<IPAddress>> OwnAddressesAsync(string node, IEnumerable<string> requested, CancellationToken cancellationToken)
    {
        var addresses = new List<IPAddress>();
        foreach (var text in requested)
        {
            if (!IPAddress.TryParse(text, out var address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
            {
                throw Invalid($"addresses: '{(text.Length > 64 ? text[..64] : text)}' is not a unicast IP address.");
            }
            addresses.Add(address);
        }
        if (addresses.Count is 0 or > MaxAddresses)
        {
            throw Invalid($"addresses must name 1 to {MaxAddresses} of the node's IP addresses.");
        }
        await using var command = dataSource.CreateCommand("SELECT name, address FROM nodes WHERE name <> $1");
        command.Parameters.Add(new() { Value = node });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            if (Uri.TryCreate(reader.GetString(1), UriKind.Absolute, out var registered)
                && IPAddress.TryParse(registered.Host.Trim('[', ']'), out var taken) && addresses.Contains(taken))
            {
                throw new RpcException(new Status(StatusCode.PermissionDenied,
                    string.Create(CultureInfo.InvariantCulture, $"Address {taken} is node {reader.GetString(0)}'s; a certificate names only its own node's addresses.")));
            }
        }
        return addresses;
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
