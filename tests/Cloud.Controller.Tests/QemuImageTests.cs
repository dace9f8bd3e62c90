using System.Diagnostics;
using System.Globalization;
using System.Net;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Tests;

/// <summary>
/// Uploaded images reach QEMU nodes: a qcow2 made by qemu-img is uploaded through the API, the
/// node pulls it (checked by SHA-256) when a VM is created from it, and the VM runs under TCG.
/// A transfer that arrives damaged is refused by the node and the create fails cleanly. A
/// deleted image leaves the nodes that pulled it.
/// </summary>
[Collection(QemuCloudCollection.Name)]
public sealed class QemuImageTests(QemuCloudFixture cloud) : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("cloud-img-").FullName;
    private readonly AgentClients _agents = new(cloud);

    [Fact]
    public async Task UploadedQcow2_IsPulledByTheNode_AndTheVmRunsOnIt()
    {
        using var tenant = await cloud.CreateTenantAsync("qimg");
        var bytes = await QemuImgCreateAsync("qcow2", "64M");
        var id = await tenant.Member.UploadedImageAsync("firmware-disk", "qcow2", bytes);

        // Two creates at once on the cloud: every node that gets one pulls the image once.
        var vms = await Task.WhenAll(tenant.Member.CreateRunningVmFromImageAsync(id, "img-a"), tenant.Member.CreateRunningVmFromImageAsync(id, "img-b"));
        foreach (var vmId in vms)
        {
            var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
            Assert.Equal("RUNNING", vm.Str("state"));
            var agent = await _agents.ForAsync(vm.Str("node"));
            var guest = (await agent.ListVmsAsync(new AgentV1.ListVmsRequest())).Vms.Single(v => v.VmId == Guid.Parse(vmId).ToString("N"));
            Assert.Equal(AgentV1.VmState.Running, guest.State);
            Assert.True(guest.Pid > 0);
            // The node holds the image now: another pull transfers nothing.
            var again = await agent.PullImageAsync(PullRequest(id, "qcow2", bytes));
            Assert.False(again.Transferred);
        }
        foreach (var vmId in vms)
        {
            Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        }
    }

    [Fact]
    public async Task LiveMigration_OfAVmOfAnUploadedImage_GivesTheTargetTheImageFirst()
    {
        using var tenant = await cloud.CreateTenantAsync("qimgmig");
        var bytes = await QemuImgCreateAsync("qcow2", "64M");
        var id = await tenant.Member.UploadedImageAsync("travels", "qcow2", bytes);
        var vmId = await tenant.Member.CreateRunningVmFromImageAsync(id, "traveller");
        var source = (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");
        var target = source == "qemu-node-1" ? "qemu-node-2" : "qemu-node-1";

        var migrated = await cloud.Http.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/migrate", $$"""{"node":"{{target}}"}""");

        Assert.True(migrated.Str("state") == "SUCCEEDED", migrated.ToString());
        var targetAgent = await _agents.ForAsync(target);
        Assert.Equal(AgentV1.VmState.Running, (await targetAgent.ListVmsAsync(new AgentV1.ListVmsRequest())).Vms.Single(v => v.VmId == Guid.Parse(vmId).ToString("N")).State);
        Assert.False((await targetAgent.PullImageAsync(PullRequest(id, "qcow2", bytes))).Transferred);
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
    }

    [Fact]
    public async Task CorruptedTransfer_IsRefusedByTheNode_AndTheCreateFailsWithoutAVm()
    {
        using var tenant = await cloud.CreateTenantAsync("qbad");
        var bytes = await QemuImgCreateAsync("raw", "1M");
        var id = await tenant.Member.UploadedImageAsync("to-corrupt", "raw", bytes);
        // Damage the stored copy: what the node receives no longer has the image's SHA-256.
        var stored = Path.Combine(cloud.ImageStorePath, id);
        var damaged = await File.ReadAllBytesAsync(stored);
        damaged[4096] ^= 0x5a;
        await File.WriteAllBytesAsync(stored, damaged);

        var (status, operation) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"doomed","flavor":"m1.tiny","image":"{{id}}"}""");
        Assert.Equal(HttpStatusCode.Accepted, status);
        var done = await tenant.Member.WaitForOperationAsync(operation.Str("id"));
        Assert.Equal("FAILED", done.Str("state"));
        Assert.Equal("INVALID_ARGUMENT", done.Str("errorCode"));
        Assert.Contains("SHA-256", done.Str("errorMessage"), StringComparison.Ordinal);
        var (_, vm) = await tenant.Member.GetJsonAsync($"/v1/vms/{operation.Str("targetId")}");
        Assert.Equal("ERROR", vm.Str("state"));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = @id", ("id", Guid.Parse(operation.Str("targetId")))));

        // Neither node kept anything: a direct pull goes to the controller again, which now
        // refuses it, since no VM of either node needs the image any more.
        foreach (var url in cloud.AgentUrls)
        {
            var agent = _agents.ForAddress(url);
            var error = await Assert.ThrowsAsync<RpcException>(() => agent.PullImageAsync(PullRequest(id, "raw", bytes)).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, error.StatusCode);
            Assert.Contains("needs", error.Status.Detail, StringComparison.Ordinal);
        }
        await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{operation.Str("targetId")}");
    }

    [Fact]
    public async Task DeletedImage_LeavesTheNodeThatPulledIt()
    {
        using var tenant = await cloud.CreateTenantAsync("qimgdel");
        var bytes = await QemuImgCreateAsync("qcow2", "64M");
        var id = await tenant.Member.UploadedImageAsync("short-lived", "qcow2", bytes);
        var kept = await tenant.Member.UploadedImageAsync("kept", "qcow2", bytes);
        var vmId = await tenant.Member.CreateRunningVmFromImageAsync(id, "short-lived-vm");
        var node = (await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("node");
        var keptVm = await tenant.Member.CreateRunningVmFromImageAsync(kept, "kept-vm");
        var keptNode = (await cloud.Http.GetJsonAsync($"/v1/vms/{keptVm}")).Body.Str("node");
        var copy = cloud.NodeImageDirectory(int.Parse(node["qemu-node-".Length..], CultureInfo.InvariantCulture), id);
        var keptCopy = cloud.NodeImageDirectory(int.Parse(keptNode["qemu-node-".Length..], CultureInfo.InvariantCulture), kept);
        Assert.True(Directory.Exists(copy), copy);
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM image_copies WHERE image_id = @id", ("id", id)));

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{keptVm}")).Str("state"));
        Assert.Equal(HttpStatusCode.OK, (await tenant.Member.SendAsync(HttpMethod.Delete, $"/v1/images/{id}")).Status);

        // The delete wakes the purger: the node's copy goes within seconds, not at the node's
        // retention (a day), and the record of it with it. The image not deleted stays.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while ((Directory.Exists(copy) || await cloud.ScalarAsync("SELECT count(*) FROM image_copies WHERE image_id = @id", ("id", id)) > 0) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }
        Assert.False(Directory.Exists(copy), "the node still holds the deleted image");
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM image_copies WHERE image_id = @id", ("id", id)));
        Assert.True(Directory.Exists(keptCopy), keptCopy);
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM image_copies WHERE image_id = @id", ("id", kept)));
    }

    private static AgentV1.PullImageRequest PullRequest(string id, string format, byte[] bytes)
        => new() { ImageId = id, Format = format, Sha256 = ImageUploads.Sha256(bytes), SizeBytes = bytes.Length };

    private async Task<byte[]> QemuImgCreateAsync(string format, string size)
    {
        var path = Path.Combine(_work, "disk." + format);
        using var process = Process.Start(new ProcessStartInfo("qemu-img", ["create", "-q", "-f", format, path, size]) { RedirectStandardError = true })!;
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, await process.StandardError.ReadToEndAsync());
        return await File.ReadAllBytesAsync(path);
    }

    public void Dispose()
    {
        _agents.Dispose();
        Directory.Delete(_work, recursive: true);
    }
}
