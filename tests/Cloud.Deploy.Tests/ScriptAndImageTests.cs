using System.Text.RegularExpressions;

namespace Cloud.Deploy.Tests;

/// <summary>The dev scripts and the container images' build files.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed partial class ScriptAndImageTests
{
    public static TheoryData<string> Scripts => [".ci/run", "deploy/dev/common.sh", "deploy/dev/test.sh", "deploy/dev/up.sh", "deploy/dev/bench.sh"];

    public static TheoryData<string> Dockerfiles => ["deploy/docker/controller.Dockerfile", "deploy/docker/agent.Dockerfile"];

    [Theory]
    [MemberData(nameof(Scripts))]
    public void Script_parses(string script)
    {
        var (code, _, stderr) = RepoFiles.Run("bash", ["-n", RepoFiles.PathOf(script)]);

        Assert.True(code == 0, $"{script}: {stderr}");
    }

    [Fact]
    public void Readme_commands_are_executable()
    {
        var readme = RepoFiles.Read("README.md");

        foreach (var command in new[] { "deploy/dev/up.sh", "deploy/dev/test.sh" })
        {
            Assert.Contains(command, readme, StringComparison.Ordinal);
            Assert.True(File.GetUnixFileMode(RepoFiles.PathOf(command)).HasFlag(UnixFileMode.UserExecute), command + " is not executable");
        }
    }

    /// <summary>The dev cloud runs with TLS on: a CA, ca.pem and a join token per agent, agents on the node port, cloudctl trusting the CA.</summary>
    [Fact]
    public void Dev_cloud_runs_with_tls_and_a_join_token_per_agent()
    {
        var script = RepoFiles.Read("deploy/dev/up.sh");

        Assert.Contains("Trust__CreateCa=true", script, StringComparison.Ordinal);
        Assert.Contains("Trust__Directory=", script, StringComparison.Ordinal);
        Assert.Contains("cp \"$CA\" \"$tls/ca.pem\"", script, StringComparison.Ordinal);
        Assert.Contains("Agent__TlsDirectory=\"$tls\"", script, StringComparison.Ordinal);
        Assert.Contains("Agent__JoinToken=\"$join_token\"", script, StringComparison.Ordinal);
        Assert.Matches(@"join_token=\$\(""\$BIN/cloudctl"" node join-token ""agent-\$n""", script);
        Assert.Contains("Agent__ControllerUrl=https://127.0.0.1:8082", script, StringComparison.Ordinal);
        Assert.Contains("\"caFile\": \"$CA\"", script, StringComparison.Ordinal);
        Assert.Contains("curl -fsS --cacert \"$CA\" https://", script, StringComparison.Ordinal);
        Assert.DoesNotContain("http://127.0.0.1", script, StringComparison.Ordinal);
        Assert.DoesNotContain("PlaintextApi", script, StringComparison.Ordinal);
    }

    [Fact]
    public void Controller_image_keeps_a_ca_folder_its_user_owns_and_no_one_else_reads()
    {
        var text = RepoFiles.Read("deploy/docker/controller.Dockerfile");

        Assert.Contains("/var/lib/cloud/trust", text, StringComparison.Ordinal);
        Assert.Contains("chmod 700 /var/lib/cloud/trust", text, StringComparison.Ordinal);
        Assert.Contains("chown app /var/lib/cloud/images /var/lib/cloud/trust", text, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Dockerfiles))]
    public void Dockerfile_publishes_a_project_that_exists_and_starts_its_assembly(string dockerfile)
    {
        var text = RepoFiles.Read(dockerfile);
        var project = PublishPattern().Match(text);
        var entry = EntryPointPattern().Match(text);

        Assert.True(project.Success, dockerfile + " publishes nothing");
        Assert.True(entry.Success, dockerfile + " has no ENTRYPOINT that runs the assembly or its native (AOT) binary");
        var folder = project.Groups["folder"].Value;
        var name = Path.GetFileName(folder);
        Assert.True(File.Exists(RepoFiles.PathOf(Path.Combine(folder, name + ".csproj"))), $"{dockerfile} publishes {folder}, which has no {name}.csproj");
        Assert.Equal(entry.Groups["dll"].Success ? name + ".dll" : "/app/" + name, entry.Groups["dll"].Success ? entry.Groups["dll"].Value : entry.Groups["native"].Value);
    }

    [GeneratedRegex(@"dotnet publish (?<folder>\S+)")]
    private static partial Regex PublishPattern();

    [GeneratedRegex(@"ENTRYPOINT \[(""dotnet"", ""(?<dll>[^""]+)""|""(?<native>/[^""]+)""\])")]
    private static partial Regex EntryPointPattern();
}
