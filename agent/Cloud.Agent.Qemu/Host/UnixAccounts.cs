using System.Globalization;

namespace Cloud.Agent.Qemu;

/// <summary>
/// File ownership and privilege drops for the numeric ids guests run as (no accounts exist for
/// them). Uses the system's own tools (chown, setpriv) rather than native calls, so there is
/// nothing unsafe here.
/// </summary>
internal static class UnixAccounts
{
    /// <summary>"uid:gid" for chown and QEMU's -runas; a guest's gid is its uid.</summary>
    public static string Owner(int id) => id.ToString(CultureInfo.InvariantCulture) + ":" + id.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// setpriv (util-linux) arguments that run the rest of the command line as <paramref name="id"/>
    /// (uid and gid) with no supplementary groups; leaving root also drops every capability.
    /// </summary>
    public static string[] DropTo(int id)
    {
        var text = id.ToString(CultureInfo.InvariantCulture);
        return ["--reuid", text, "--regid", text, "--clear-groups", "--"];
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
