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

    /// <summary>The agent's TLS folder is on its state directory; it joins with the token in a file only root reads.</summary>
    [Fact]
    public void Agent_unit_names_its_tls_folder_and_its_join_token_file()
    {
        var unit = UnitLines("cloud-agent.service");

        Assert.Contains("Environment=Agent__TlsDirectory=/var/lib/cloud-agent/tls", unit);
        Assert.Contains("StateDirectory=cloud-agent", unit);
        var tokenFile = Assert.Single(unit, l => l.StartsWith("Environment=Agent__JoinTokenFile=", StringComparison.Ordinal));
        Assert.StartsWith("/", tokenFile.Split('=', 3)[2], StringComparison.Ordinal);
    }

    /// <summary>The CA reaches the controller's dynamic user as systemd credentials (its own copies, 0400), the folder Trust:Directory names.</summary>
    [Fact]
    public void Controller_unit_gets_the_ca_as_credentials_and_never_makes_one()
    {
        var unit = UnitLines("cloud-controller.service");

        Assert.Contains(unit, l => l.StartsWith("LoadCredential=ca.pem:/", StringComparison.Ordinal));
        Assert.Contains(unit, l => l.StartsWith("LoadCredential=ca.key:/", StringComparison.Ordinal));
        Assert.Contains("Environment=Trust__Directory=%d", unit);
        Assert.Contains("Environment=Trust__CreateCa=false", unit);
    }

    [Theory]
    [MemberData(nameof(Units))]
    public void Unit_gives_no_plaintext_url(string unit)
        => Assert.DoesNotContain(UnitLines(unit), l => l.Contains("http://", StringComparison.Ordinal) || l.Contains("PlaintextApi", StringComparison.Ordinal));

    private static List<string> UnitLines(string unit) =>
        [.. RepoFiles.Read($"deploy/systemd/{unit}").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))];
}
