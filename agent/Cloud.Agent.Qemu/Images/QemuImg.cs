using System.Globalization;
using System.Text.Json;
using Cloud.Agent.Hypervisor;

namespace Cloud.Agent.Qemu;

internal sealed record QemuImageInfo(string Format, long VirtualSize, long ActualSize, string? BackingFile, bool HasDataFile, IReadOnlyList<QemuImageSnapshot> Snapshots);

internal sealed record QemuImageSnapshot(string Name, long VmStateSize, DateTimeOffset CreatedAt);

/// <summary>
/// qemu-img, for what happens to disks while QEMU is not running them. Reads of a disk that a
/// running QEMU holds use --force-share; they only ever read immutable snapshot data.
/// Every command names the format of the disk it opens (-f): qemu-img left to probe would take
/// a "raw" image that is really a VMDK descriptor for one, and open the host files it names.
/// </summary>
internal sealed class QemuImg(string binary)
{
    private static readonly TimeSpan ShortTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan LongTimeout = TimeSpan.FromHours(2);

    public Task<QemuImageInfo> InfoAsync(string path, string format, bool forceShare, CancellationToken cancellationToken)
        => InfoAsync(path, format, forceShare, asId: null, cancellationToken);

    /// <summary>
    /// qemu-img info on a file of unknown trust (an image entering the store): as
    /// <paramref name="asId"/>, an unprivileged uid and gid, when one is given (the agent is root),
    /// so that whatever the file makes qemu-img open, it opens with that id's rights.
    /// </summary>
    public Task<QemuImageInfo> ProbeAsync(string path, string format, int? asId, CancellationToken cancellationToken)
        => InfoAsync(path, format, forceShare: false, asId, cancellationToken);

    private async Task<QemuImageInfo> InfoAsync(string path, string format, bool forceShare, int? asId, CancellationToken cancellationToken)
    {
        var args = new List<string> { "info", "-f", DiskFormat(format), "--output=json" };
        if (forceShare)
        {
            args.Add("--force-share");
        }
        args.Add(path);
        var result = await RunAsync(args, ShortTimeout, cancellationToken, asId).ConfigureAwait(false);
        return ParseInfo(result.Stdout);
    }

    /// <summary>Validates qemu-img's JSON (a hostile image must not be able to confuse the store).</summary>
    internal static QemuImageInfo ParseInfo(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            var format = root.GetProperty("format").GetString() ?? throw new FormatException("format is null");
            var virtualSize = root.GetProperty("virtual-size").GetInt64();
            var actualSize = root.TryGetProperty("actual-size", out var a) ? a.GetInt64() : 0;
            var backing = root.TryGetProperty("backing-filename", out var b) ? b.GetString() : null;
            var hasDataFile = root.TryGetProperty("format-specific", out var specific)
                && specific.TryGetProperty("data", out var data)
                && data.TryGetProperty("data-file", out _);
            var snapshots = new List<QemuImageSnapshot>();
            if (root.TryGetProperty("snapshots", out var list))
            {
                foreach (var s in list.EnumerateArray())
                {
                    var created = DateTimeOffset.FromUnixTimeSeconds(s.GetProperty("date-sec").GetInt64());
                    snapshots.Add(new QemuImageSnapshot(s.GetProperty("name").GetString() ?? "", s.GetProperty("vm-state-size").GetInt64(), created));
                }
            }
            if (virtualSize < 0)
            {
                throw new FormatException("negative virtual-size");
            }
            return new QemuImageInfo(format, virtualSize, actualSize, backing, hasDataFile, snapshots);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new HypervisorToolException($"qemu-img info gave output that cannot be understood: {ex.Message}", ex);
        }
    }

    public Task CreateBlankAsync(string path, long sizeBytes, CancellationToken cancellationToken)
        => RunAsync(["create", "-q", "-f", "qcow2", path, sizeBytes.ToString(CultureInfo.InvariantCulture)], ShortTimeout, cancellationToken);

    public Task CreateOverlayAsync(string path, string backingPath, string backingFormat, long sizeBytes, CancellationToken cancellationToken)
        => RunAsync(["create", "-q", "-f", "qcow2", "-F", backingFormat, "-b", backingPath, path, sizeBytes.ToString(CultureInfo.InvariantCulture)], ShortTimeout, cancellationToken);

    /// <summary>
    /// Writes a disk, or one internal snapshot of it (<paramref name="snapshotTag"/>), as a new qcow2:
    /// an overlay of <paramref name="backing"/> holding only what differs from it, or with no
    /// backing a standalone file with the chain flattened. <paramref name="forceShare"/> reads a
    /// disk a running QEMU holds (an internal snapshot's clusters do not change under it).
    /// </summary>
    public Task ConvertAsync(string source, string sourceFormat, string destination, string? snapshotTag, (string Path, string Format)? backing, bool forceShare, CancellationToken cancellationToken)
    {
        var args = new List<string> { "convert", "-q", "-f", DiskFormat(sourceFormat), "-O", "qcow2" };
        if (snapshotTag is not null)
        {
            args.AddRange(["-l", "snapshot.name=" + snapshotTag]);
        }
        if (backing is { } b)
        {
            args.AddRange(["-B", b.Path, "-F", b.Format]);
        }
        if (forceShare)
        {
            args.Add("-U");
        }
        args.AddRange([source, destination]);
        return RunAsync(args, LongTimeout, cancellationToken);
    }

    /// <summary>Points an overlay at another copy of its backing file (the same content at this node's path); the data is not touched.</summary>
    public Task RebaseUnsafeAsync(string path, string backingPath, string backingFormat, CancellationToken cancellationToken)
        => RunAsync(["rebase", "-u", "-f", "qcow2", "-b", backingPath, "-F", DiskFormat(backingFormat), path], ShortTimeout, cancellationToken);

    public Task ResizeAsync(string path, string format, long sizeBytes, CancellationToken cancellationToken)
        => RunAsync(["resize", "-q", "-f", DiskFormat(format), path, sizeBytes.ToString(CultureInfo.InvariantCulture)], ShortTimeout, cancellationToken);

    /// <summary>The formats the store holds; anything else never reaches qemu-img.</summary>
    private static string DiskFormat(string format)
        => format is "raw" or "qcow2" ? format : throw new HypervisorException(HypervisorError.InvalidArgument, $"Disk format '{format}' is not supported; use raw or qcow2.");

    private async Task<ProcessResult> RunAsync(IReadOnlyList<string> args, TimeSpan timeout, CancellationToken cancellationToken, int? asId = null)
    {
        var result = asId is not { } id
            ? await ProcessRunner.RunAsync(binary, args, timeout, cancellationToken).ConfigureAwait(false)
            : await ProcessRunner.RunAsync("setpriv", [.. UnixAccounts.DropTo(id), binary, .. args], timeout, cancellationToken).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw new HypervisorToolException($"qemu-img {args[0]} failed: {result.ErrorText}");
        }
        return result;
    }
}
