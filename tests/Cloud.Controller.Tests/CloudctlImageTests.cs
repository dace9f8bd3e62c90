using System.Net;
using System.Text.Json;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>cloudctl image create/upload/list/show/delete against the test cloud.</summary>
[Collection(CloudCollection.Name)]
public sealed class CloudctlImageTests(CloudFixture cloud) : IDisposable
{
    private readonly string _file = Path.Combine(Path.GetTempPath(), $"cloudctl-image-{Guid.NewGuid():N}.raw");
    private readonly List<string> _configs = [];

    [Fact]
    public async Task Image_create_with_file_list_show_and_delete()
    {
        using var tenant = await cloud.CreateTenantAsync("cliimg");
        var config = Config(tenant.MemberToken);
        var bytes = ImageUploads.RawBytes(100_000);
        await File.WriteAllBytesAsync(_file, bytes);

        var (exit, output) = await Cloudctl.RunAsync(config, "image", "create", "--name", "cli-disk", "--format", "raw", "--file", _file, "-o", "json");
        Assert.True(exit == 0, output);
        var created = JsonDocument.Parse(output).RootElement;
        Assert.Equal("ACTIVE", created.Str("state"));
        Assert.Equal(ImageUploads.Sha256(bytes), created.Str("sha256"));
        var id = created.Str("id");

        var (listExit, list) = await Cloudctl.RunAsync(config, "image", "list");
        Assert.Equal(0, listExit);
        Assert.Contains(id, list, StringComparison.Ordinal);
        var (showExit, show) = await Cloudctl.RunAsync(config, "image", "show", id);
        Assert.Equal(0, showExit);
        Assert.Contains(ImageUploads.Sha256(bytes), show, StringComparison.Ordinal);
        using var friend = await cloud.CreateTenantAsync("clifriend");
        // A private image has no members.
        var refused = await Assert.ThrowsAsync<Cloud.Cli.CliException>(() => Cloudctl.RunAsync(config, "image", "share", id, friend.Id));
        Assert.StartsWith("FAILED_PRECONDITION", refused.Message, StringComparison.Ordinal);

        var (deleteExit, deleted) = await Cloudctl.RunAsync(config, "image", "delete", id);
        Assert.Equal(0, deleteExit);
        Assert.Contains("DELETED", deleted, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Image_upload_of_the_wrong_file_fails_with_the_api_error()
    {
        using var tenant = await cloud.CreateTenantAsync("cliimgbad");
        var config = Config(tenant.MemberToken);
        await File.WriteAllBytesAsync(_file, ImageUploads.RawBytes(5000));
        var (exit, output) = await Cloudctl.RunAsync(config, "image", "create", "--name", "later", "--format", "raw", "--sha256", new string('a', 64), "-o", "json");
        Assert.True(exit == 0, output);
        var id = JsonDocument.Parse(output).RootElement.Str("id");

        var error = await Assert.ThrowsAsync<Cloud.Cli.CliException>(() => Cloudctl.RunAsync(config, "image", "upload", id, _file));
        Assert.StartsWith("INVALID_ARGUMENT", error.Message, StringComparison.Ordinal);
        Assert.Contains("SHA-256", error.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<Cloud.Cli.CliException>(() => Cloudctl.RunAsync(config, "image", "create", "--name", "x", "--format", "raw"));
    }

    [Fact]
    public async Task Image_share_and_unshare_a_shared_image()
    {
        using var tenant = await cloud.CreateTenantAsync("clishare");
        using var friend = await cloud.CreateTenantAsync("clifriend");
        var config = Config(tenant.MemberToken);
        await File.WriteAllBytesAsync(_file, ImageUploads.RawBytes(3000));
        // Members see a shared image once it is ACTIVE.
        var (exit, output) = await Cloudctl.RunAsync(config, "image", "create", "--name", "team", "--format", "raw", "--file", _file, "--visibility", "shared", "-o", "json");
        Assert.True(exit == 0, output);
        var id = JsonDocument.Parse(output).RootElement.Str("id");

        var (shareExit, shared) = await Cloudctl.RunAsync(config, "image", "share", id, friend.Id);
        Assert.Equal(0, shareExit);
        Assert.Contains(friend.Id, shared, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await friend.Member.GetJsonAsync($"/v1/images/{id}")).Status);
        var (unshareExit, _) = await Cloudctl.RunAsync(config, "image", "unshare", id, friend.Id);
        Assert.Equal(0, unshareExit);
        Assert.Equal(HttpStatusCode.NotFound, (await friend.Member.GetJsonAsync($"/v1/images/{id}")).Status);
    }

    private string Config(string token)
    {
        var path = Cloudctl.WriteConfig(cloud.RestUrl, token);
        _configs.Add(path);
        return path;
    }

    public void Dispose()
    {
        File.Delete(_file);
        foreach (var config in _configs)
        {
            File.Delete(config);
        }
    }
}
