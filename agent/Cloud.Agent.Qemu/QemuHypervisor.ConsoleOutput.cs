using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu;

public sealed partial class QemuHypervisor
{
    /// <summary>
    /// The tail of the VM's serial.log, which QEMU's serial chardev writes (truncated when QEMU
    /// starts the guest afresh, appended to when it loads a saved state). Takes no VM gate: a read
    /// of a file QEMU appends to needs none, and a console read must not wait behind a migration.
    /// </summary>
    public async Task<ConsoleOutput> GetConsoleOutputAsync(string vmId, int maxBytes, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var vm = Get(vmId);
        return await ConsoleLogs.ReadTailAsync(vm.Paths.SerialLog, maxBytes, cancellationToken).ConfigureAwait(false);
    }
}
