using System.Text.Json;
using Cloud.Cli;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>cloudctl's verbs as a tenant and as an operator: tables, JSON, progress, profiles, completion.</summary>
[Collection(CloudCollection.Name)]
public sealed class CloudctlVerbTests(CloudFixture cloud) : IDisposable
{
    private readonly List<string> _files = [];

    [Fact]
    public async Task A_tenant_drives_a_vm_through_every_verb()
    {
        using var tenant = await cloud.CreateTenantAsync("cli");
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, tenant.MemberToken));
        var userData = Track(Path.GetTempFileName());
        await File.WriteAllTextAsync(userData, "#cloud-config\n");

        var (exit, created) = await Cloudctl.RunAsync(config, "vm", "create", "--name", "cli-guest", "--flavor", Tenancy.Nano, "--label", "tier=web", "--user-data-file", userData, "-o", "json");
        Assert.Equal(0, exit);
        var vmId = JsonDocument.Parse(created).RootElement.GetProperty("targetId").GetString()!;

        foreach (var verb in (string[][])[["stop", "--force"], ["start"], ["reboot"], ["resize", "--flavor", "m1.tiny"], ["snapshot", "--name", "cli-snap"]])
        {
            var (code, output) = await Cloudctl.RunAsync(config, ["vm", verb[0], vmId, .. verb[1..]]);
            Assert.True(code == 0, output);
            Assert.Contains("SUCCEEDED", output, StringComparison.Ordinal);
            // Off a terminal, progress is printed as lines instead of a bar.
            Assert.Matches(@"(vm|snapshot)\.\w+ \d+%", output);
        }

        var (_, table) = await Cloudctl.RunAsync(config, "vm", "list", "-l", "tier=web");
        var row = table.Split('\n').Single(l => l.Contains("cli-guest", StringComparison.Ordinal));
        Assert.Contains("RUNNING", row, StringComparison.Ordinal);
        Assert.Contains("m1.tiny", row, StringComparison.Ordinal);
        Assert.DoesNotContain("cli-guest", (await Cloudctl.RunAsync(config, "vm", "list", "-l", "tier=db")).Output, StringComparison.Ordinal);

        var (_, snapshots) = await Cloudctl.RunAsync(config, "snapshot", "list", "--vm", vmId, "-o", "json");
        var snapshotId = JsonDocument.Parse(snapshots).RootElement.GetProperty("snapshots")[0].GetProperty("id").GetString()!;
        Assert.Contains("SUCCEEDED", (await Cloudctl.RunAsync(config, "snapshot", "restore", snapshotId)).Output, StringComparison.Ordinal);
        Assert.Contains("SUCCEEDED", (await Cloudctl.RunAsync(config, "snapshot", "delete", snapshotId)).Output, StringComparison.Ordinal);

        var (_, operations) = await Cloudctl.RunAsync(config, "operation", "list");
        Assert.Contains("vm.resize", operations, StringComparison.Ordinal);
        Assert.Contains("SUCCEEDED", (await Cloudctl.RunAsync(config, "vm", "delete", vmId)).Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_refusal_is_reported_with_its_code()
    {
        using var tenant = await cloud.CreateTenantAsync("clino", """{"instances":0,"vcpus":0,"memoryMb":"0","diskGb":"0","snapshots":0}""");
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, tenant.MemberToken));

        var error = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsync(config, "vm", "create", "--name", "nope", "--flavor", Tenancy.Nano));

        Assert.StartsWith("RESOURCE_EXHAUSTED: Quota exceeded", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_operator_manages_tenants_and_tokens_and_the_new_token_works_from_a_new_profile()
    {
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken));
        var id = $"cli-{Guid.NewGuid():N}"[..16];

        Assert.Equal(0, (await Cloudctl.RunAsync(config, "tenant", "create", id, "--display-name", "CLI", "--instances", "3")).Exit);
        var (_, quota) = await Cloudctl.RunAsync(config, "tenant", "quota", id, "--vcpus", "7", "--image-gb", "12", "-o", "json");
        var tenant = JsonDocument.Parse(quota).RootElement.GetProperty("quota");
        Assert.Equal(3, tenant.GetProperty("instances").GetInt32());
        Assert.Equal(7, tenant.GetProperty("vcpus").GetInt32());
        Assert.Equal("12", tenant.GetProperty("imageGb").GetString());
        Assert.Equal(50, tenant.GetProperty("images").GetInt32());

        var (_, cordoned) = await Cloudctl.RunAsync(config, "node", "cordon", "test-node-2", "-o", "json");
        var (uncordonExit, table) = await Cloudctl.RunAsync(config, "node", "uncordon", "test-node-2");
        Assert.False(JsonDocument.Parse(cordoned).RootElement.GetProperty("schedulable").GetBoolean());
        Assert.Equal(0, uncordonExit);
        Assert.Contains("test-node-2", table, StringComparison.Ordinal);
        Assert.DoesNotContain("cordoned", table, StringComparison.Ordinal);
        Assert.Equal(2, await cloud.ScalarAsync("SELECT count(*) FROM nodes WHERE schedulable"));

        var flavor = $"c.{Guid.NewGuid():N}"[..16];
        await cloud.Http.PostAsync("/v1/flavors", $$"""{"name":"{{flavor}}","vcpus":1,"memoryMb":"64","isPublic":false}""");
        Assert.Equal(0, (await Cloudctl.RunAsync(config, "flavor", "grant", flavor, id)).Exit);
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM flavor_access WHERE flavor_name = @f AND tenant_id = @t", ("f", flavor), ("t", id)));
        Assert.Equal(0, (await Cloudctl.RunAsync(config, "flavor", "revoke", flavor, id)).Exit);
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM flavor_access WHERE flavor_name = @f", ("f", flavor)));

        var (_, issued) = await Cloudctl.RunAsync(config, "token", "create", "--tenant", id, "--role", "reader", "--name", "ci", "-o", "json");
        var token = JsonDocument.Parse(issued).RootElement;
        var secret = token.GetProperty("secret").GetString()!;
        Assert.StartsWith("cloud_", secret, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, (await Cloudctl.RunAsync(config, "token", "list", "--tenant", id)).Output, StringComparison.Ordinal);

        Assert.Equal(0, (await Cloudctl.RunAsync(config, "config", "set-profile", "reader", "--url", cloud.RestUrl.ToString(), "--token", secret)).Exit);
        Assert.Equal(0, (await Cloudctl.RunAsync(config, "config", "use", "reader")).Exit);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(config));
        }
        var (_, view) = await Cloudctl.RunAsync(config, "config", "view");
        Assert.DoesNotContain(secret, view, StringComparison.Ordinal);
        var (_, own) = await Cloudctl.RunAsync(config, "tenant", "list");
        Assert.Contains(id, own, StringComparison.Ordinal);
        var denied = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsync(config, "vm", "create", "--name", "x", "--flavor", Tenancy.Nano));
        Assert.StartsWith("PERMISSION_DENIED", denied.Message, StringComparison.Ordinal);

        Assert.Equal(0, (await Cloudctl.RunAsync(config, "--profile", "default", "token", "revoke", token.GetProperty("id").GetString()!)).Exit);
        var revoked = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsync(config, "tenant", "list"));
        Assert.StartsWith("UNAUTHENTICATED", revoked.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("vm st", new[] { "start", "stop" })]
    [InlineData("snap", new[] { "snapshot" })]
    [InlineData("token cr", new[] { "create" })]
    public async Task Completion_offers_the_commands_that_fit(string line, string[] expected)
    {
        var config = Track(Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken));
        var (exit, output) = await Cloudctl.RunAsync(config, "__complete", line);
        Assert.Equal(0, exit);
        Assert.Equal(expected, output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        var (_, script) = await Cloudctl.RunAsync(config, "completion", "bash");
        Assert.Contains("complete -o default -F _cloudctl cloudctl", script, StringComparison.Ordinal);
    }

    private string Track(string path)
    {
        _files.Add(path);
        return path;
    }

    public void Dispose()
    {
        foreach (var file in _files)
        {
            File.Delete(file);
        }
    }
}
