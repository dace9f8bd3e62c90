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

        Assert.True(code == 0 && stderr.Length == 0 && stdout.Length == 0, $"{unit}: exit {code}\n{stdout}{stderr}");
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
