using System.Text.Json.Nodes;
using Cloud.Agent.Hypervisor;
using Cloud.Qmp;

namespace Cloud.Agent.Qemu;

/// <summary>
/// TLS for a live migration's two streams (QEMU's migration stream and the NBD disk export the
/// source mirrors into), when Agent:Qemu:TlsDirectory is set. Both QEMUs get a tls-creds-x509
/// object with the node's QEMU certificate and the cloud CA: the destination (server) requires a
/// client certificate from the CA and, through an authz-simple object as tls-authz, admits only
/// the certificate of the migration's source node, on the migration port and on the NBD port;
/// the source (client) checks the destination's certificate against the address it connects to
/// (the certificate's IP SAN), so neither side talks to anyone but the other. The objects are
/// per migration and removed when it ends, however it ends; the folder QEMU loads them from is
/// the guest's (QEMU runs as the guest's uid by then) and is deleted as soon as QEMU has read it.
/// </summary>
public sealed partial class QemuHypervisor
{
    private const string TlsCredsObject = "migration-tls";
    private const string TlsAuthzObject = "migration-authz";

    private bool MigratesOverTls => _options.TlsDirectory.Length > 0;

    /// <summary>
    /// Adds the migration's TLS objects to the VM's QEMU; false (nothing added) when QEMU TLS is
    /// off. <paramref name="server"/>: the destination, which also gets the tls-authz object
    /// admitting <paramref name="peerNode"/> only.
    /// </summary>
    private async Task<bool> AddMigrationTlsAsync(QemuVm vm, QmpClient qmp, string migrationId, string peerNode, bool server, CancellationToken cancellationToken)
    {
        if (!MigratesOverTls)
        {
            return false;
        }
        // Left over from an attempt whose clean-up did not get through: this migration's own.
        await RemoveMigrationTlsAsync(qmp, cancellationToken).ConfigureAwait(false);
        var folder = Path.Combine(vm.Paths.Directory, "tls-" + migrationId);
        var written = MigrationTlsFiles.Write(_options.TlsDirectory, folder);
        try
        {
            await GiveToGuestAsync(vm, written, cancellationToken).ConfigureAwait(false);
            // QEMU reads and checks the files when the object is created, as the guest's uid.
            await qmp.ExecuteAsync("object-add", new JsonObject
            {
                ["qom-type"] = "tls-creds-x509",
                ["id"] = TlsCredsObject,
                ["dir"] = folder,
                ["endpoint"] = server ? "server" : "client",
                ["verify-peer"] = true,
            }, cancellationToken).ConfigureAwait(false);
            if (server)
            {
                await qmp.ExecuteAsync("object-add", new JsonObject
                {
                    ["qom-type"] = "authz-simple",
                    ["id"] = TlsAuthzObject,
                    ["identity"] = MigrationTlsFiles.AuthzIdentity(peerNode),
                }, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (QmpCommandException ex)
        {
            throw new HypervisorException(HypervisorError.FailedPrecondition,
                $"QEMU refused the node's TLS certificate ({_options.TlsDirectory}) for the migration of VM {vm.Id}: {ex.Message}", ex);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
        return true;
    }

    /// <summary>
    /// Takes the TLS objects out of the VM's QEMU, and TLS out of its migration parameters (a
    /// memory snapshot streams to the agent itself, in the clear). Errors are only logged: a
    /// QEMU that is going away takes its objects with it.
    /// </summary>
    private async Task RemoveMigrationTlsAsync(QmpClient qmp, CancellationToken cancellationToken)
    {
        if (!MigratesOverTls || !qmp.IsConnected)
        {
            return;
        }
        try
        {
            await qmp.ExecuteAsync("migrate-set-parameters", new JsonObject { ["tls-creds"] = "", ["tls-authz"] = "", ["tls-hostname"] = "" }, cancellationToken).ConfigureAwait(false);
        }
        catch (QmpException)
        {
            // A migration still in its last steps: the objects go with the QEMU.
        }
        foreach (var id in (string[])[TlsAuthzObject, TlsCredsObject])
        {
            try
            {
                await qmp.ExecuteAsync("object-del", new JsonObject { ["id"] = id }, cancellationToken).ConfigureAwait(false);
            }
            catch (QmpException)
            {
                // Not there (never added, or removed already).
            }
        }
    }

    /// <summary>The peer's name, required when the streams go over TLS (tls-authz names it).</summary>
    private void RequirePeerNode(string peerNode, string field)
    {
        VmSpecValidator.ValidatePeerNode(peerNode);
        if (MigratesOverTls && peerNode.Length == 0)
        {
            throw new HypervisorException(HypervisorError.InvalidArgument,
                $"{field} is required: this node's QEMU migrates over TLS ({QemuOptions.SectionName}:TlsDirectory) and admits only the peer node's certificate.");
        }
    }
}
