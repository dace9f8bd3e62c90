using System.Globalization;
using Cloud.Agent.Hypervisor;

namespace Cloud.Agent.Qemu;

/// <summary>
/// Hands out the uid (also the gid) each guest's QEMU runs as, from <see cref="GuestIdRange"/>,
/// like libvirt's dynamic ownership. A claim is a file registry/&lt;id&gt; naming the VM folder
/// that holds the id; the registry is host-wide (not under DataDirectory), so several agents on
/// one machine never hand out the same id. Claims are made under an exclusive lock on
/// registry/.lock. A claim whose VM folder is gone, or no longer records that id, is stale (an
/// agent whose data folder was wiped) and is taken over.
/// </summary>
internal sealed class GuestIds
{
    private static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(30);
    private readonly GuestIdRange _range;
    private readonly string _registry;
    private int _cursor;

    public GuestIds(GuestIdRange range, string registry)
    {
        _range = range;
        _registry = registry;
        _cursor = range.FirstGuest;
        Directory.CreateDirectory(registry);
        // Used only when the agent is root on Linux (see QemuHypervisor.GuestOwnership).
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(registry, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    public GuestIdRange Range => _range;

    /// <summary>The id a VM folder records, or null (none yet, or unreadable).</summary>
    public static int? Recorded(string vmDirectory)
    {
        try
        {
            return int.TryParse(File.ReadAllText(VmPaths.GuestIdFileOf(vmDirectory)).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// A free id for the VM folder, claimed, and recorded in the folder (guest-id, root's, which
    /// the guest cannot rewrite). Ids are taken round-robin, so a just-released id is the last to
    /// be handed out again.
    /// </summary>
    public async Task<int> ClaimAsync(VmPaths paths, CancellationToken cancellationToken)
    {
        using var held = await LockAsync(cancellationToken).ConfigureAwait(false);
        var count = _range.Last - _range.FirstGuest + 1;
        for (var i = 0; i < count; i++)
        {
            var id = _range.FirstGuest + (_cursor - _range.FirstGuest + i) % count;
            if (IsFree(id))
            {
                Write(id, paths);
                _cursor = id == _range.Last ? _range.FirstGuest : id + 1;
                return id;
            }
        }
        throw new HypervisorException(HypervisorError.ResourceExhausted,
            $"Every guest uid of {QemuOptions.SectionName}:GuestIdRange ({_range.First}-{_range.Last}) is in use on this host.");
    }

    /// <summary>
    /// On re-adoption: keeps the id the folder records when its claim is the folder's own or
    /// free (re-made, if the registry lost it). False when another VM folder holds it.
    /// </summary>
    public async Task<bool> TryKeepAsync(int id, VmPaths paths, CancellationToken cancellationToken)
    {
        if (!_range.Contains(id) || id == _range.ProbeId)
        {
            return false;
        }
        using var held = await LockAsync(cancellationToken).ConfigureAwait(false);
        if (Holder(id) is { } holder && holder != paths.Directory && !IsFree(id))
        {
            return false;
        }
        Write(id, paths);
        return true;
    }

    /// <summary>Gives the id back, if the folder still holds it.</summary>
    public async Task ReleaseAsync(int id, VmPaths paths, CancellationToken cancellationToken)
    {
        using var held = await LockAsync(cancellationToken).ConfigureAwait(false);
        if (Holder(id) == paths.Directory)
        {
            File.Delete(ClaimFile(id));
        }
    }

    private string ClaimFile(int id) => Path.Combine(_registry, id.ToString(CultureInfo.InvariantCulture));

    private string? Holder(int id)
    {
        try
        {
            return File.ReadAllText(ClaimFile(id)).Trim();
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    private bool IsFree(int id)
        => Holder(id) is not { } holder
            || !Directory.Exists(holder)
            || Recorded(holder) != id;

    private void Write(int id, VmPaths paths)
    {
        var text = id.ToString(CultureInfo.InvariantCulture);
        // The folder's record first: a crash in between leaves a record without a claim, which
        // re-adoption re-claims, never a claim that looks stale while the folder uses the id.
        WriteFile(paths.GuestIdFile, text);
        WriteFile(ClaimFile(id), paths.Directory);
    }

    private static void WriteFile(string path, string content)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, content);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>
    /// An exclusive lock on registry/.lock, shared with every agent on the host: .NET takes a
    /// flock for FileShare.None, and flock excludes other open file descriptions, in this process too.
    /// </summary>
    private async Task<FileStream> LockAsync(CancellationToken cancellationToken)
    {
        var path = Path.Combine(_registry, ".lock");
        var deadline = Environment.TickCount64 + (long)LockTimeout.TotalMilliseconds;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (Environment.TickCount64 < deadline)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(10), cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
