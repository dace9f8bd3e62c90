using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;
using Cloud.Qmp;

namespace Cloud.Agent.Qemu;

/// <summary>
/// A memory snapshot is QEMU's own migration stream of the paused guest, written to a file by the
/// agent: QEMU sends it to a loopback socket the agent accepts once (QEMU's sandbox forbids it
/// to spawn a writer, and 7.2 has no file: target), and a new QEMU started with -incoming reads
/// it back from a socket the agent feeds. The stream is a format QEMU keeps loadable across its
/// versions, with the same machine type; the disk is snapshotted at the same paused instant.
/// </summary>
public sealed partial class QemuHypervisor
{
    // QEMU's default cap (128 MiB/s) is for a link shared with guests; a save goes to local disk.
    private const long SaveBandwidth = 8L << 30;

    /// <summary>
    /// Pauses the guest, runs <paramref name="whilePaused"/> (the disk's side of the snapshot),
    /// streams RAM and device state into <paramref name="path"/>, and lets the guest go on as it
    /// was. The stream's completion lets go of the disk; cont takes it back (and a guest that was
    /// paused is paused again straight after, having run for an instant).
    /// </summary>
    private async Task SaveMemoryAsync(QemuVm vm, QemuProcess process, string path, Func<CancellationToken, Task> whilePaused, CancellationToken cancellationToken)
    {
        var qmp = process.Qmp;
        var wasRunning = vm.State is VmState.Running;
        vm.Busy = "snapshot";
        var bandwidth = await qmp.ExecuteAsync("query-migrate-parameters", null, cancellationToken).ConfigureAwait(false);
        var streamed = false;
        try
        {
            if (wasRunning)
            {
                await qmp.ExecuteAsync("stop", null, cancellationToken).ConfigureAwait(false);
            }
            await whilePaused(cancellationToken).ConfigureAwait(false);
            // A failed migration may have left pause-before-switchover on: the save would wait for a go-ahead forever.
            await qmp.ExecuteAsync("migrate-set-capabilities", Capabilities(("auto-converge", false), ("events", true), ("pause-before-switchover", false)), cancellationToken).ConfigureAwait(false);
            // The state streams to the agent itself: never over a TLS a migration may have left set.
            await qmp.ExecuteAsync("migrate-set-parameters", new JsonObject { ["max-bandwidth"] = SaveBandwidth, ["tls-creds"] = "" }, cancellationToken).ConfigureAwait(false);
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start(1);
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            var accepted = listener.AcceptTcpClientAsync(cancellationToken).AsTask();
            await qmp.ExecuteAsync("migrate", new JsonObject { ["uri"] = "tcp:127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture) }, cancellationToken).ConfigureAwait(false);
            streamed = true;
            using (var client = await accepted.WaitAsync(_options.MigrationTimeout, _time, cancellationToken).ConfigureAwait(false))
            {
                listener.Stop();
                await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
                // QEMU closes the connection once the stream is complete (or broken: asked below).
                await client.GetStream().CopyToAsync(file, cancellationToken).ConfigureAwait(false);
                await file.FlushAsync(cancellationToken).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
            }
            await WaitForStreamEndAsync(vm, qmp, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (streamed)
            {
                await RestoreBandwidthAsync(qmp, bandwidth).ConfigureAwait(false);
            }
            try
            {
                await qmp.ExecuteAsync("cont", null, CancellationToken.None).ConfigureAwait(false);
                if (!wasRunning)
                {
                    await qmp.ExecuteAsync("stop", null, CancellationToken.None).ConfigureAwait(false);
                }
            }
            catch (QmpException ex)
            {
                Log.ActionFailed(_logger, ex, vm.Id, "resuming the guest after a memory snapshot");
            }
            vm.Busy = null;
        }
    }

    /// <summary>Feeds a saved memory state to a QEMU started with -incoming defer and waits until it has loaded it (the guest paused).</summary>
    private async Task LoadMemoryAsync(QemuVm vm, QemuProcess process, string path, CancellationToken cancellationToken)
    {
        var qmp = process.Qmp;
        var port = _ports.Reserve();
        try
        {
            var host = IPAddress.Parse(_options.ListenAddress);
            var hostInUri = host.AddressFamily == AddressFamily.InterNetworkV6 ? "[" + host + "]" : host.ToString();
            await qmp.ExecuteAsync("migrate-set-capabilities", Capabilities(("events", true)), cancellationToken).ConfigureAwait(false);
            await qmp.ExecuteAsync("migrate-incoming", new JsonObject { ["uri"] = $"tcp:{hostInUri}:{port.ToString(CultureInfo.InvariantCulture)}" }, cancellationToken).ConfigureAwait(false);
            using (var client = new TcpClient(host.AddressFamily))
            {
                await client.ConnectAsync(host, port, cancellationToken).ConfigureAwait(false);
                await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
                var stream = client.GetStream();
                await file.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
                client.Client.Shutdown(SocketShutdown.Send);
            }
            await WaitForStreamEndAsync(vm, qmp, cancellationToken).ConfigureAwait(false);
        }
        catch (QmpDisconnectedException ex)
        {
            throw new HypervisorException(HypervisorError.Internal, $"QEMU could not load the memory state and exited: {ReadLogTail(vm.Paths.QemuLog)}", ex);
        }
        finally
        {
            _ports.Release(port);
        }
    }

    /// <summary>Waits until QEMU reports the stream completed; a failed stream is an error with QEMU's reason.</summary>
    private async Task WaitForStreamEndAsync(QemuVm vm, QmpClient qmp, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_options.MigrationTimeout);
        while (true)
        {
            var info = await qmp.ExecuteAsync("query-migrate", null, deadline.Token).ConfigureAwait(false);
            switch (info.TryGetProperty("status", out var s) ? s.GetString() : null)
            {
                case "completed":
                    return;
                case "failed" or "cancelled":
                    throw new HypervisorException(HypervisorError.Internal,
                        "The memory state stream failed: " + (info.TryGetProperty("error-desc", out var desc) ? desc.GetString() : "QEMU gave no reason"));
            }
            await vm.JobSignal.WaitAsync(TimeSpan.FromMilliseconds(50), deadline.Token).ConfigureAwait(false);
        }
    }

    private async Task RestoreBandwidthAsync(QmpClient qmp, System.Text.Json.JsonElement before)
    {
        var previous = Long(before, "max-bandwidth");
        if (previous <= 0)
        {
            return;
        }
        try
        {
            await qmp.ExecuteAsync("migrate-set-parameters", new JsonObject { ["max-bandwidth"] = previous }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (QmpException ex)
        {
            Log.ActionFailed(_logger, ex, "", "restoring the migration bandwidth");
        }
    }
}
