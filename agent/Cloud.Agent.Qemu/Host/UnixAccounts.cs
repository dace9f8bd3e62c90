using System.Globalization;

namespace Cloud.Agent.Qemu;

/// <summary>
/// The unprivileged account QEMU runs as when the agent is root, and file ownership for it. Uses
/// the system's own tools (useradd, chown) rather than native calls, so there is nothing unsafe here.
/// </summary>
internal static class UnixAccounts
{
    public static (int Uid, int Gid)? Lookup(string user)
    {
        foreach (var line in File.ReadLines("/etc/passwd"))
        {
            var fields = line.Split(':');
            if (fields.Length >= 4 && fields[0] == user
                && int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var uid)
                && int.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
            {
                return (uid, gid);
            }
        }
        return null;
    }

    /// <summary>Creates a locked system account with no home and no shell, unless it exists.</summary>
    public static async Task EnsureUserAsync(string user, CancellationToken cancellationToken)
    {
        if (Lookup(user) is not null)
        {
            return;
        }
        var result = await ProcessRunner.RunAsync("useradd",
            ["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--user-group", user],
            TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        // Exit code 9: created meanwhile by someone else.
        if (result.ExitCode is not (0 or 9) || Lookup(user) is null)
        {
            throw new HypervisorToolException($"Cannot create the user '{user}' that QEMU runs as: {result.ErrorText}");
        }
    }

    public static async Task ChownAsync(string owner, IEnumerable<string> paths, CancellationToken cancellationToken)
    {
        var args = new List<string> { "--no-dereference", owner };
        args.AddRange(paths);
        var result = await ProcessRunner.RunAsync("chown", args, TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw new HypervisorToolException($"chown {owner} failed: {result.ErrorText}");
        }
    }
}
