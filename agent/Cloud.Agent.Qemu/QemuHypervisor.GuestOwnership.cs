namespace Cloud.Agent.Qemu;

/// <summary>
/// Each guest's own uid (see <see cref="GuestIds"/>). When the agent is root, a VM's QEMU runs as
/// the VM's uid with a gid of the same number and no other groups, and on disk:
/// <list type="bullet">
/// <item>vms/&lt;id&gt;/ is root:gid 0710: the guest may enter its folder but neither list it nor
/// add, rename or remove anything in it, so what the agent keeps there (vm.json, guest-id,
/// runtime.json, migration.json, snapshots/) cannot be rewritten or replaced by a symlink that
/// root would later follow;</item>
/// <item>the files QEMU itself uses (disk.qcow2, serial.log, qemu.log, a migration's TLS
/// folder) are uid:gid, 0600 (0700 for folders);</item>
/// <item>snapshots/ and everything in it is root's, 0700/0600: QEMU never opens those files (the
/// agent streams memory states over a socket and copies disks), so no guest can read them;</item>
/// <item>cached images are root's, 0600: QEMU opens its disk's backing chain while still root,
/// before it drops to the guest's uid, so no guest uid can read any image, a private image of
/// another tenant cached on the node included.</item>
/// </list>
/// When the agent is not root nothing changes hands: QEMU runs as the agent's own user, and the
/// files are that user's alone (0600/0700), as they always were.
/// </summary>
public sealed partial class QemuHypervisor
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerOnlyFolder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode GuestEntersFolder = OwnerOnlyFolder | UnixFileMode.GroupExecute;

    private GuestIds? _guestIds;

    /// <summary>Set up once the backend knows it runs as root (see EnsureInitializedAsync).</summary>
    private void InitializeGuestIds()
    {
        if (OperatingSystem.IsLinux() && Environment.IsPrivilegedProcess && GuestIdRange.TryParse(_options.GuestIdRange, out var range))
        {
            _guestIds = new GuestIds(range, _options.GuestIdRegistry);
        }
    }

    /// <summary>QEMU's -runas argument for the VM ("uid:gid"), or null when QEMU keeps the agent's user.</summary>
    private string? RunAs(QemuVm vm) => _guestIds is not null && vm.GuestId is { } id ? UnixAccounts.Owner(id) : null;

    /// <summary>A new VM folder's uid, claimed and recorded in the folder.</summary>
    private async Task ClaimGuestIdAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        if (_guestIds is not null)
        {
            vm.GuestId = await _guestIds.ClaimAsync(vm.Paths, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A re-adopted VM keeps the uid its folder records, unless another VM holds it now (then it gets a new one, used from its next start).</summary>
    private async Task AdoptGuestIdAsync(QemuVm vm, CancellationToken cancellationToken)
    {
        if (_guestIds is null)
        {
            return;
        }
        if (GuestIds.Recorded(vm.Paths.Directory) is { } recorded && await _guestIds.TryKeepAsync(recorded, vm.Paths, cancellationToken).ConfigureAwait(false))
        {
            vm.GuestId = recorded;
            return;
        }
        vm.GuestId = await _guestIds.ClaimAsync(vm.Paths, cancellationToken).ConfigureAwait(false);
        Log.GuestIdReassigned(_logger, vm.Id, vm.GuestId.Value);
    }

    private async Task ReleaseGuestIdAsync(QemuVm vm)
    {
        if (_guestIds is not null && vm.GuestId is { } id)
        {
            await _guestIds.ReleaseAsync(id, vm.Paths, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Gives the VM's files to its uid as described above. Run after the agent made or replaced
    /// any of them (a create, an incoming migration, a restore) and before every start, so the
    /// ownership is right whatever happened in between; chown and chmod are idempotent.
    /// </summary>
    private async Task OwnGuestFilesAsync(QemuVm vm, CancellationToken cancellationToken, params string[] extra)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        var paths = vm.Paths;
        if (_guestIds is not null)
        {
            // Made here, empty, so that they are the guest's from the start: QEMU (and the shell
            // that starts it) would create them as root.
            foreach (var log in (string[])[paths.SerialLog, paths.QemuLog])
            {
                using (new FileStream(log, FileMode.OpenOrCreate, FileAccess.Write))
                {
                }
            }
        }
        var guestFiles = new List<string>();
        foreach (var file in (string[])[paths.DiskFile, paths.SerialLog, paths.QemuLog, .. extra])
        {
            if (File.Exists(file) || Directory.Exists(file))
            {
                File.SetUnixFileMode(file, Directory.Exists(file) ? OwnerOnlyFolder : OwnerOnly);
                guestFiles.Add(file);
            }
        }
        if (Directory.Exists(paths.SnapshotsDirectory))
        {
            File.SetUnixFileMode(paths.SnapshotsDirectory, OwnerOnlyFolder);
        }
        if (_guestIds is null || vm.GuestId is not { } id)
        {
            File.SetUnixFileMode(paths.Directory, OwnerOnlyFolder);
            return;
        }
        await UnixAccounts.ChownAsync("0:" + id.ToString(System.Globalization.CultureInfo.InvariantCulture), [paths.Directory], cancellationToken).ConfigureAwait(false);
        File.SetUnixFileMode(paths.Directory, GuestEntersFolder);
        if (guestFiles.Count > 0)
        {
            await UnixAccounts.ChownAsync(UnixAccounts.Owner(id), guestFiles, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Files (0600) and folders (0700) the agent made for the VM's QEMU to open after it dropped to the guest's uid.</summary>
    private async Task GiveToGuestAsync(QemuVm vm, IReadOnlyList<string> paths, CancellationToken cancellationToken)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        foreach (var path in paths)
        {
            File.SetUnixFileMode(path, Directory.Exists(path) ? OwnerOnlyFolder : OwnerOnly);
        }
        if (_guestIds is not null && vm.GuestId is { } id && paths.Count > 0)
        {
            await UnixAccounts.ChownAsync(UnixAccounts.Owner(id), paths, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The image store's staging folder, opened to the id incoming images are inspected as (the
    /// first of the range, never a guest's); returns that id, or null when the agent is not root.
    /// </summary>
    private async Task<int?> OpenImageToProbeAsync(string directory, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        if (OperatingSystem.IsWindows() || _guestIds is not { } ids)
        {
            return null;
        }
        var files = Directory.GetFiles(directory);
        foreach (var file in files)
        {
            File.SetUnixFileMode(file, OwnerOnly | UnixFileMode.GroupRead);
        }
        File.SetUnixFileMode(directory, GuestEntersFolder | UnixFileMode.GroupRead);
        await UnixAccounts.ChownAsync("0:" + ids.Range.ProbeId.ToString(System.Globalization.CultureInfo.InvariantCulture), [directory, .. files], cancellationToken).ConfigureAwait(false);
        return ids.Range.ProbeId;
    }

    /// <summary>A finished image is root's alone (see the class comment).</summary>
    private async Task SealImageAsync(string directory, CancellationToken cancellationToken)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var files = Directory.GetFiles(directory);
        foreach (var file in files)
        {
            File.SetUnixFileMode(file, OwnerOnly);
        }
        File.SetUnixFileMode(directory, OwnerOnlyFolder);
        if (_guestIds is not null)
        {
            await UnixAccounts.ChownAsync("0:0", [directory, .. files], cancellationToken).ConfigureAwait(false);
        }
    }
}
