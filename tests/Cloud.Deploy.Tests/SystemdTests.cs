namespace Cloud.Deploy.Tests;

/// <summary>The systemd units, as systemd itself reads them.</summary>
public sealed class SystemdTests
{
    public static TheoryData<string> Units => ["cloud-controller.service", "cloud-migrate.service", "cloud-agent.service"];

    [Theory]
    [MemberData(nameof(Units))]
    public void Unit_verifies_without_a_warning(string unit)
    {
        var (code, stdout, stderr) = RepoFiles.Run("systemd-analyze", ["verify", RepoFiles.PathOf($"deploy/systemd/{unit}")]);
        // A native (AOT) service binary is installed under /opt/cloud on the node, not on a build
        // machine: its absence here is the one complaint expected; anything else still fails.
        var missingInstall = $"{unit}: Command /opt/cloud/";
        var complaints = string.Join('\n', (stdout + stderr).Split('\n')
            .Where(l => l.Length > 0 && !(l.StartsWith(missingInstall, StringComparison.Ordinal) && l.EndsWith(" is not executable: No such file or directory", StringComparison.Ordinal))));

        Assert.True(complaints.Length == 0 && (code == 0 || (stdout + stderr).Contains(missingInstall, StringComparison.Ordinal)), $"{unit}: exit {code}\n{stdout}{stderr}");
    }

    [Fact]
    public void Agent_unit_lets_guests_outlive_an_agent_restart()
    {
        var unit = UnitLines("cloud-agent.service");

        // The default (control-group) would kill every QEMU with the agent.
        Assert.Contains("KillMode=process", unit);
        Assert.Contains("User=root", unit);
    }

    [Fact]
    public void Migrations_run_only_from_their_own_unit_before_the_controller()
    {
        var controller = UnitLines("cloud-controller.service");
        var migrate = UnitLines("cloud-migrate.service");

        Assert.DoesNotContain(controller, line => line.StartsWith("ExecStart=", StringComparison.Ordinal) && line.EndsWith(" migrate", StringComparison.Ordinal));
        Assert.Contains(migrate, line => line.StartsWith("ExecStart=", StringComparison.Ordinal) && line.EndsWith(" migrate", StringComparison.Ordinal));
        Assert.Contains(controller, line => line.StartsWith("After=", StringComparison.Ordinal) && line.Contains("cloud-migrate.service", StringComparison.Ordinal));
    }

    private static List<string> UnitLines(string unit) =>
        [.. RepoFiles.Read($"deploy/systemd/{unit}").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))];
}
