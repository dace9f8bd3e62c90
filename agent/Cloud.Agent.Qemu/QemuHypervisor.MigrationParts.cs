using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;
using Cloud.Qmp;
using Phase = Cloud.Contracts.Agent.V1.MigrationProgress.Types.Phase;

namespace Cloud.Agent.Qemu;

/// <summary>The pieces of live migration that are not its steps: QMP replies read, progress built, peer addresses checked.</summary>
public sealed partial class QemuHypervisor
{
    private static async Task<JsonElement?> FindBlockJobAsync(QmpClient qmp, string jobId, CancellationToken cancellationToken)
    {
        var jobs = await qmp.ExecuteAsync("query-block-jobs", null, cancellationToken).ConfigureAwait(false);
        foreach (var job in jobs.EnumerateArray())
        {
            if (job.TryGetProperty("device", out var device) && device.GetString() == jobId)
            {
                return job;
            }
        }
        return null;
    }

    /// <summary>
    /// QEMU reports "completed" a moment before it has worked out the migration's total time and
    /// downtime (a poll in between reads 0 for both): asks again, briefly, until they are there.
    /// </summary>
    private static async Task<JsonElement> CompletedInfoAsync(QmpClient qmp, JsonElement info, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 50 && Long(info, "total-time") == 0; attempt++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10), cancellationToken).ConfigureAwait(false);
            info = await qmp.ExecuteAsync("query-migrate", null, cancellationToken).ConfigureAwait(false);
        }
        return info;
    }

    private static MigrationProgress MemoryProgress(JsonElement info, Phase phase)
    {
        var result = new MigrationProgress { Phase = phase };
        if (info.TryGetProperty("ram", out var ram))
        {
            result.TransferredBytes = Long(ram, "transferred");
            result.RemainingBytes = Long(ram, "remaining");
            result.TotalBytes = Long(ram, "total");
            result.DirtyPagesRate = Long(ram, "dirty-pages-rate");
        }
        result.ExpectedDowntimeMs = Long(info, "expected-downtime");
        if (phase == Phase.Completed)
        {
            result.RemainingBytes = 0;
            result.DowntimeMs = Long(info, "downtime");
            result.TotalTimeMs = Long(info, "total-time");
        }
        return result;
    }

    private static long Long(JsonElement obj, string name) => obj.TryGetProperty(name, out var v) && v.TryGetInt64(out var n) ? n : 0;

    private static JsonObject Capabilities(params (string Name, bool State)[] capabilities)
    {
        var list = new JsonArray();
        foreach (var (name, state) in capabilities)
        {
            list.Add((JsonNode)new JsonObject { ["capability"] = name, ["state"] = state });
        }
        return new JsonObject { ["capabilities"] = list };
    }

    /// <summary>"tcp:HOST:PORT" with a literal IP address; nothing else may be handed to QEMU's migrate.</summary>
    internal static string ParseTcpUri(string uri)
    {
        if (uri is null || !uri.StartsWith("tcp:", StringComparison.Ordinal))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"migration_uri '{uri}' must be tcp:ADDRESS:PORT.");
        }
        var (host, port) = SplitHostPort(uri["tcp:".Length..], "migration_uri");
        return $"tcp:{host}:{port.ToString(CultureInfo.InvariantCulture)}";
    }

    /// <summary>"nbd://HOST:PORT/EXPORT".</summary>
    internal static (string Host, int Port, string Export) ParseNbdUri(string uri)
    {
        const string scheme = "nbd://";
        if (uri is null || !uri.StartsWith(scheme, StringComparison.Ordinal))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"disk_uri '{uri}' must be nbd://ADDRESS:PORT/EXPORT.");
        }
        var rest = uri[scheme.Length..];
        var slash = rest.LastIndexOf('/');
        if (slash < 0 || !VmSpecValidator.IsSafeId(rest[(slash + 1)..]))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"disk_uri '{uri}' must name an export: nbd://ADDRESS:PORT/EXPORT.");
        }
        var (host, port) = SplitHostPort(rest[..slash], "disk_uri");
        return (host.Trim('[', ']'), port, rest[(slash + 1)..]);
    }

    private static (string Host, int Port) SplitHostPort(string text, string field)
    {
        var colon = text.LastIndexOf(':');
        if (colon <= 0
            || !int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535
            || !IPAddress.TryParse(text[..colon].Trim('[', ']'), out var address))
        {
            throw new HypervisorException(HypervisorError.InvalidArgument, $"{field} must hold a literal IP address and a port, not '{text}'.");
        }
        var host = address.AddressFamily == AddressFamily.InterNetworkV6 ? "[" + address + "]" : address.ToString();
        return (host, port);
    }

    /// <summary>
    /// A destination prepared without the source's memory layout starts with different RAM blocks,
    /// and QEMU then only says the stream broke: name the likely cause.
    /// </summary>
    private static string MemoryLayoutHint(QemuVm vm, RuntimeRecord runtime)
        => runtime.Dimms.Count > 0 || runtime.BootMemoryMb != vm.Spec.Shape.MemoryMb
            ? $" (the guest's memory was resized live: {runtime.BootMemoryMb} MB at boot and {runtime.Dimms.Count} hot-added DIMMs; the destination must be prepared with this VM's memory_layout)"
            : "";

    private sealed class MigrationFailedException(string message) : Exception(message);
}
