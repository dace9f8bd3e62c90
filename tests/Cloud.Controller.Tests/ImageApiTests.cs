using System.Buffers.Binary;
using System.Net;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>
/// Tenant images on the fake nodes: upload with a checksum and a format check, visibility on
/// both wires, deletion of an image in use, the per-tenant limit, and bad input that changes
/// nothing in PostgreSQL or in the image store.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class ImageApiTests(CloudFixture cloud) : IDisposable
{
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    public void Dispose() => _channel.Dispose();

    [Fact]
    public async Task Upload_RightChecksum_ImageTurnsActive_AndAVmBootsFromIt()
    {
        using var tenant = await cloud.CreateTenantAsync("imgok");
        var bytes = ImageUploads.RawBytes(300_000);
        var image = await tenant.Member.CreateImageAsync("disk-a", "raw", ImageUploads.Sha256(bytes), minDiskGb: 1);
        Assert.Equal("QUEUED", image.Str("state"));
        Assert.Equal(tenant.Id, image.Str("owner"));
        Assert.Equal("private", image.Str("visibility"));

        var (status, uploaded) = await tenant.Member.UploadAsync(image.Str("id"), bytes, chunked: true);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ACTIVE", uploaded.Str("state"));
        Assert.Equal(bytes.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), uploaded.Str("sizeBytes"));
        Assert.Equal(bytes, await File.ReadAllBytesAsync(Path.Combine(cloud.ImageStorePath, image.Str("id"))));

        // The fake nodes pull it (checking the checksum) before the VM is created.
        var (created, operation) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"from-image","flavor":"m1.tiny","image":"{{image.Str("id")}}"}""");
        Assert.Equal(HttpStatusCode.Accepted, created);
        var done = await tenant.Member.WaitForOperationAsync(operation.Str("id"));
        Assert.True(done.Str("state") == "SUCCEEDED", done.ToString());
        var (_, vm) = await tenant.Member.GetJsonAsync($"/v1/vms/{operation.Str("targetId")}");
        Assert.Equal(image.Str("id"), vm.Str("image"));
        await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{operation.Str("targetId")}");
    }

    [Fact]
    public async Task Upload_WrongChecksum_LeavesTheImageInError_AndKeepsNoByte_ThenARetrySucceeds()
    {
        using var tenant = await cloud.CreateTenantAsync("imgsha");
        var bytes = ImageUploads.RawBytes(200_000);
        var id = (await tenant.Member.CreateImageAsync("disk-b", "raw", ImageUploads.Sha256(bytes))).Str("id");
        var corrupted = (byte[])bytes.Clone();
        corrupted[^1] ^= 0xff;

        var (status, problem) = await tenant.Member.UploadAsync(id, corrupted);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("INVALID_ARGUMENT", problem.Str("code"));
        Assert.Contains("SHA-256", problem.Str("detail"), StringComparison.Ordinal);
        var (_, image) = await tenant.Member.GetJsonAsync($"/v1/images/{id}");
        Assert.Equal("ERROR", image.Str("state"));
        Assert.Contains("SHA-256", image.Str("error"), StringComparison.Ordinal);
        Assert.Empty(StoreFilesOf(id));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM images WHERE id = @id AND (stored OR size_bytes <> 0)", ("id", id)));

        var (retried, uploaded) = await tenant.Member.UploadAsync(id, bytes);
        Assert.Equal(HttpStatusCode.OK, retried);
        Assert.Equal("ACTIVE", uploaded.Str("state"));
        Assert.Equal("", uploaded.Str("error"));
    }

    [Theory]
    [InlineData("qcow2", "backing", "backing file")]
    [InlineData("qcow2", "raw", "not a qcow2")]
    [InlineData("raw", "qcow2", "is a qcow2 image")]
    [InlineData("qcow2", "data-file", "external data file")]
    [InlineData("qcow2", "vmdk-descriptor", "not a qcow2")]
    [InlineData("raw", "vmdk-descriptor", "VMDK descriptor")]
    [InlineData("raw", "vmdk-version", "VMDK descriptor")]
    [InlineData("raw", "vmdk-sparse", "VMDK image")]
    [InlineData("raw", "vhd-fixed", "VHD image")]
    [InlineData("raw", "vhdx", "VHDX image")]
    [InlineData("raw", "vdi", "VDI image")]
    [InlineData("raw", "qed", "QED image")]
    [InlineData("raw", "luks", "LUKS")]
    public async Task Upload_ContentThatIsNotTheDeclaredFormat_IsRefused(string declared, string content, string reason)
    {
        using var tenant = await cloud.CreateTenantAsync("imgfmt");
        var bytes = content switch
        {
            "backing" => Qcow2Header(backingFileOffset: 512),
            "qcow2" => Qcow2Header(backingFileOffset: 0),
            "data-file" => Qcow2Header(backingFileOffset: 0, incompatibleFeatures: 1UL << 2),
            "vmdk-descriptor" => System.Text.Encoding.ASCII.GetBytes(VmdkDescriptor("/etc/shadow")),
            // What QEMU's probe takes for a descriptor too: a first line reading version=1.
            "vmdk-version" => System.Text.Encoding.ASCII.GetBytes("# a comment\n\nversion=1\nRW 1 FLAT \"/etc/shadow\" 0\n"),
            "vmdk-sparse" => WithMagic(ImageUploads.RawBytes(4096), 0, "KDMV"u8),
            // A fixed VHD: raw data with the footer only at its very end.
            "vhd-fixed" => WithMagic(ImageUploads.RawBytes(4096), 4096 - 512, "conectix"u8),
            "vhdx" => WithMagic(ImageUploads.RawBytes(4096), 0, "vhdxfile"u8),
            "vdi" => WithMagic(ImageUploads.RawBytes(4096), 0x40, [0x7f, 0x10, 0xda, 0xbe]),
            "qed" => WithMagic(ImageUploads.RawBytes(4096), 0, "QED\0"u8),
            "luks" => WithMagic(ImageUploads.RawBytes(4096), 0, [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xba, 0xbe]),
            _ => ImageUploads.RawBytes(4096),
        };
        var id = (await tenant.Member.CreateImageAsync("disk-f", declared, ImageUploads.Sha256(bytes))).Str("id");

        var (status, problem) = await tenant.Member.UploadAsync(id, bytes);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(reason, problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal("ERROR", (await tenant.Member.GetJsonAsync($"/v1/images/{id}")).Body.Str("state"));
        Assert.Empty(StoreFilesOf(id));
    }

    [Fact]
    public async Task Upload_ValidQcow2Header_IsAccepted_WithItsVirtualSize()
    {
        using var tenant = await cloud.CreateTenantAsync("imgq");
        var bytes = Qcow2Header(backingFileOffset: 0);
        var id = await tenant.Member.UploadedImageAsync("disk-q", "qcow2", bytes);
        var (_, image) = await tenant.Member.GetJsonAsync($"/v1/images/{id}");
        Assert.Equal((64L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), image.Str("virtualSizeBytes"));
    }

    [Theory]
    [InlineData("""{"name":"x","format":"raw","sha256":"abc"}""", "sha256")]
    [InlineData("""{"name":"x","format":"raw","sha256":"ABCDEF0000000000000000000000000000000000000000000000000000000000"}""", "sha256")]
    [InlineData("""{"name":"x","format":"vmdk","sha256":"0000000000000000000000000000000000000000000000000000000000000000"}""", "format")]
    [InlineData("""{"name":"","format":"raw","sha256":"0000000000000000000000000000000000000000000000000000000000000000"}""", "name")]
    [InlineData("""{"name":"x","format":"raw","minDiskGb":"-1","sha256":"0000000000000000000000000000000000000000000000000000000000000000"}""", "min_disk_gb")]
    [InlineData("""{"name":"x","format":"raw","visibility":"everyone","sha256":"0000000000000000000000000000000000000000000000000000000000000000"}""", "visibility")]
    [InlineData("""{"name":"x","format":"raw","sha256":"0000000000000000000000000000000000000000000000000000000000000000","size":1}""", "size")]
    public async Task Create_MalformedOrOutOfRange_IsRefused_AndWritesNothing(string body, string field)
    {
        using var tenant = await cloud.CreateTenantAsync("imgbad");
        var before = await cloud.ScalarAsync("SELECT count(*) FROM images");

        var (status, problem) = await tenant.Member.PostAsync("/v1/images", body);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("INVALID_ARGUMENT", problem.Str("code"));
        Assert.Contains(field, problem.Str("detail"), StringComparison.OrdinalIgnoreCase);
        Assert.Equal(before, await cloud.ScalarAsync("SELECT count(*) FROM images"));
    }

    [Fact]
    public async Task Upload_Oversized_IsRefused_BeforeOrWhileReading_AndKeepsNoByte()
    {
        using var tenant = await cloud.CreateTenantAsync("imgbig");
        var bytes = ImageUploads.RawBytes((int)CloudFixture.MaxUploadBytes + 1);
        var id = (await tenant.Member.CreateImageAsync("disk-big", "raw", ImageUploads.Sha256(bytes))).Str("id");

        // Announced by Content-Length: refused before a byte is read; the row is unchanged.
        var before = await RowAsync(id);
        var (announced, problem) = await tenant.Member.UploadAsync(id, bytes);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, announced);
        Assert.Equal("INVALID_ARGUMENT", problem.Str("code"));
        Assert.Equal(before, await RowAsync(id));
        Assert.Empty(StoreFilesOf(id));

        // Chunked: refused once the limit is passed; nothing of it is kept.
        var (chunked, chunkedProblem) = await tenant.Member.UploadAsync(id, bytes, chunked: true);
        Assert.True(chunked == HttpStatusCode.RequestEntityTooLarge, chunkedProblem.ToString());
        Assert.Equal("ERROR", (await tenant.Member.GetJsonAsync($"/v1/images/{id}")).Body.Str("state"));
        Assert.Empty(StoreFilesOf(id));
    }

    [Fact]
    public async Task Upload_Empty_OrToAnActiveImage_OrNotOctetStream_IsRefused()
    {
        using var tenant = await cloud.CreateTenantAsync("imgmisc");
        var bytes = ImageUploads.RawBytes(1000);
        var id = (await tenant.Member.CreateImageAsync("disk-m", "raw", ImageUploads.Sha256(bytes))).Str("id");

        var before = await RowAsync(id);
        var (empty, _) = await tenant.Member.UploadAsync(id, []);
        Assert.Equal(HttpStatusCode.BadRequest, empty);
        using (var json = new StringContent("{}", System.Text.Encoding.UTF8, "application/json"))
        {
            using var response = await tenant.Member.PutAsync($"/v1/images/{id}/file", json);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        }
        Assert.Equal(before, await RowAsync(id));
        Assert.Empty(StoreFilesOf(id));

        Assert.Equal(HttpStatusCode.OK, (await tenant.Member.UploadAsync(id, bytes)).Status);
        var active = await RowAsync(id);
        var (again, problem) = await tenant.Member.UploadAsync(id, ImageUploads.RawBytes(1000));
        Assert.Equal(HttpStatusCode.BadRequest, again);
        Assert.Equal("FAILED_PRECONDITION", problem.Str("code"));
        Assert.Equal(active, await RowAsync(id));
        Assert.Equal(bytes, await File.ReadAllBytesAsync(Path.Combine(cloud.ImageStorePath, id)));
    }

    [Fact]
    public async Task AnotherTenantsPrivateImage_AnswersLikeOneThatDoesNotExist_OnEveryEndpoint_BothWires()
    {
        using var owner = await cloud.CreateTenantAsync("imgown");
        using var other = await cloud.CreateTenantAsync("imgoth");
        var bytes = ImageUploads.RawBytes(1000);
        var id = await owner.Member.UploadedImageAsync("private-disk", "raw", bytes);
        const string missing = "img-00000000000000000000000000000000";

        foreach (var target in (string[])[id, missing])
        {
            var expected = $"Image '{target}' does not exist.";
            var (get, getProblem) = await other.Member.GetJsonAsync($"/v1/images/{target}");
            Assert.Equal((HttpStatusCode.NotFound, expected), (get, getProblem.Str("detail")));
            var (upload, uploadProblem) = await other.Member.UploadAsync(target, bytes);
            Assert.Equal((HttpStatusCode.NotFound, expected), (upload, uploadProblem.Str("detail")));
            var (delete, deleteProblem) = await other.Member.SendAsync(HttpMethod.Delete, $"/v1/images/{target}");
            Assert.Equal((HttpStatusCode.NotFound, expected), (delete, deleteProblem.Str("detail")));
            var (create, createProblem) = await other.Member.PostAsync("/v1/vms", $$"""{"name":"steal","flavor":"m1.tiny","image":"{{target}}"}""");
            Assert.Equal((HttpStatusCode.NotFound, expected), (create, createProblem.Str("detail")));

            var compute = new Compute.ComputeClient(_channel);
            foreach (var call in new Func<Task>[]
            {
                () => compute.GetImageAsync(new GetImageRequest { Id = target }, Tenancy.Bearer(other.MemberToken)).ResponseAsync,
                () => compute.DeleteImageAsync(new DeleteImageRequest { Id = target }, Tenancy.Bearer(other.MemberToken)).ResponseAsync,
                () => compute.CreateVmAsync(new CreateVmRequest { Name = "steal", Flavor = "m1.tiny", Image = target }, Tenancy.Bearer(other.MemberToken)).ResponseAsync,
            })
            {
                var error = await Assert.ThrowsAsync<RpcException>(call);
                Assert.Equal((StatusCode.NotFound, expected), (error.StatusCode, error.Status.Detail));
            }
        }
        var (_, list) = await other.Member.GetJsonAsync("/v1/images");
        Assert.DoesNotContain(list.GetProperty("images").EnumerateArray(), i => i.Str("id") == id);
        var grpcList = await new Compute.ComputeClient(_channel).ListImagesAsync(new ListImagesRequest(), Tenancy.Bearer(other.MemberToken));
        Assert.DoesNotContain(grpcList.Images, i => i.Id == id);
        Assert.Equal("ACTIVE", (await owner.Member.GetJsonAsync($"/v1/images/{id}")).Body.Str("state"));
    }

    [Fact]
    public async Task PublicImages_OnlyOperatorsPublish_EveryTenantBoots_OnlyTheOwnerChanges()
    {
        using var tenant = await cloud.CreateTenantAsync("imgpub");
        var (refused, problem) = await tenant.Member.PostAsync("/v1/images", $$"""{"name":"mine","format":"raw","visibility":"public","sha256":"{{new string('0', 64)}}"}""");
        Assert.Equal(HttpStatusCode.Forbidden, refused);
        Assert.Equal("PERMISSION_DENIED", problem.Str("code"));

        var bytes = ImageUploads.RawBytes(2000);
        var id = await cloud.Http.UploadedImageAsync("public-disk", "raw", bytes, visibility: "public");
        var (_, list) = await tenant.Member.GetJsonAsync("/v1/images");
        Assert.Contains(list.GetProperty("images").EnumerateArray(), i => i.Str("id") == id);
        var (delete, deleteProblem) = await tenant.Member.SendAsync(HttpMethod.Delete, $"/v1/images/{id}");
        Assert.Equal(HttpStatusCode.Forbidden, delete);
        Assert.Equal("PERMISSION_DENIED", deleteProblem.Str("code"));
        var vm = await tenant.Member.CreateRunningVmFromImageAsync(id);
        await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vm}");
        Assert.Equal(HttpStatusCode.OK, (await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/images/{id}")).Status);
    }

    [Fact]
    public async Task SharedImage_IsUsableByItsMembersOnly_AndOnlyTheOwnerManagesMembers()
    {
        using var owner = await cloud.CreateTenantAsync("shown");
        using var member = await cloud.CreateTenantAsync("shmem");
        using var outsider = await cloud.CreateTenantAsync("shout");
        var id = await owner.Member.UploadedImageAsync("team-disk", "raw", ImageUploads.RawBytes(3000), visibility: "shared");
        var expected = $"Image '{id}' does not exist.";
        Assert.Equal(HttpStatusCode.NotFound, (await member.Member.GetJsonAsync($"/v1/images/{id}")).Status);

        var (added, image) = await owner.Member.SendAsync(HttpMethod.Put, $"/v1/images/{id}/members/{member.Id}");
        Assert.Equal(HttpStatusCode.OK, added);
        Assert.Equal([member.Id], image.GetProperty("members").EnumerateArray().Select(m => m.GetString()));

        var (seen, asMember) = await member.Member.GetJsonAsync($"/v1/images/{id}");
        Assert.Equal(HttpStatusCode.OK, seen);
        Assert.Empty(asMember.GetProperty("members").EnumerateArray());
        var vm = await member.Member.CreateRunningVmFromImageAsync(id);
        var (share, shareProblem) = await member.Member.SendAsync(HttpMethod.Put, $"/v1/images/{id}/members/{outsider.Id}");
        Assert.Equal((HttpStatusCode.Forbidden, "PERMISSION_DENIED"), (share, shareProblem.Str("code")));
        var (outside, outsideProblem) = await outsider.Member.PostAsync("/v1/vms", $$"""{"name":"no","flavor":"m1.tiny","image":"{{id}}"}""");
        Assert.Equal((HttpStatusCode.NotFound, expected), (outside, outsideProblem.Str("detail")));

        var (removed, _) = await owner.Member.SendAsync(HttpMethod.Delete, $"/v1/images/{id}/members/{member.Id}");
        Assert.Equal(HttpStatusCode.OK, removed);
        var (gone, goneProblem) = await member.Member.GetJsonAsync($"/v1/images/{id}");
        Assert.Equal((HttpStatusCode.NotFound, expected), (gone, goneProblem.Str("detail")));
        await member.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vm}");
    }

    [Fact]
    public async Task Delete_ImageInUse_IsRefused_ThenSucceedsOnceTheVmIsGone()
    {
        using var tenant = await cloud.CreateTenantAsync("imgdel");
        var id = await tenant.Member.UploadedImageAsync("in-use", "raw", ImageUploads.RawBytes(5000));
        var vm = await tenant.Member.CreateRunningVmFromImageAsync(id);

        var (refused, problem) = await tenant.Member.SendAsync(HttpMethod.Delete, $"/v1/images/{id}");
        Assert.Equal(HttpStatusCode.BadRequest, refused);
        Assert.Equal("FAILED_PRECONDITION", problem.Str("code"));
        Assert.True(File.Exists(Path.Combine(cloud.ImageStorePath, id)));

        await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vm}");
        var (deleted, image) = await tenant.Member.SendAsync(HttpMethod.Delete, $"/v1/images/{id}");
        Assert.Equal(HttpStatusCode.OK, deleted);
        Assert.Equal("DELETED", image.Str("state"));
        Assert.False(File.Exists(Path.Combine(cloud.ImageStorePath, id)));
        Assert.Equal(HttpStatusCode.NotFound, (await tenant.Member.GetJsonAsync($"/v1/images/{id}")).Status);
    }

    [Fact]
    public async Task Create_IdempotencyKey_AnswersTheSameImage_AndRefusesAnotherRequest()
    {
        using var tenant = await cloud.CreateTenantAsync("imgidem");
        var body = $$"""{"name":"same","format":"raw","sha256":"{{new string('1', 64)}}"}""";
        var (first, one) = await tenant.Member.PostAsync("/v1/images", body, idempotencyKey: "key-1");
        var (second, two) = await tenant.Member.PostAsync("/v1/images", body, idempotencyKey: "key-1");
        Assert.Equal((HttpStatusCode.Created, HttpStatusCode.Created), (first, second));
        Assert.Equal(one.Str("id"), two.Str("id"));
        var (other, problem) = await tenant.Member.PostAsync("/v1/images", body.Replace("same", "other", StringComparison.Ordinal), idempotencyKey: "key-1");
        Assert.Equal(HttpStatusCode.Conflict, other);
        Assert.Equal("FAILED_PRECONDITION", problem.Str("code"));
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM images WHERE project_id = @p", ("p", tenant.Id)));
    }

    [Fact]
    public async Task Create_BeyondTheTenantsImageQuota_IsRefused_EvenConcurrently()
    {
        const int Quota = 5;
        using var tenant = await cloud.CreateTenantAsync("imgcap", $$"""{"instances":1,"vcpus":1,"memoryMb":"1024","diskGb":"10","snapshots":1,"images":{{Quota}}}""");
        var statuses = await Task.WhenAll(Enumerable.Range(0, Quota + 3).Select(async n =>
            (await tenant.Member.PostAsync("/v1/images", $$"""{"name":"n{{n}}","format":"raw","sha256":"{{new string('2', 64)}}"}""")).Status));
        Assert.Equal(Quota, statuses.Count(s => s == HttpStatusCode.Created));
        Assert.All(statuses.Where(s => s != HttpStatusCode.Created), s => Assert.Equal(HttpStatusCode.TooManyRequests, s));
        Assert.Equal(Quota, await cloud.ScalarAsync("SELECT count(*) FROM images WHERE project_id = @p", ("p", tenant.Id)));
        var (_, usage) = await cloud.Http.GetJsonAsync($"/v1/tenants/{tenant.Id}");
        Assert.Equal(Quota, usage.GetProperty("usage").GetProperty("images").GetInt32());
    }

    [Fact]
    public async Task Upload_BeyondTheTenantsImageGb_IsRefused_AndADeleteGivesTheRoomBack()
    {
        // Each image counts at least a whole GiB, so a 1 GiB quota holds one small image.
        using var tenant = await cloud.CreateTenantAsync("imggb", """{"instances":1,"vcpus":1,"memoryMb":"1024","diskGb":"10","snapshots":1,"imageGb":"1"}""");
        var first = await tenant.Member.UploadedImageAsync("first", "raw", ImageUploads.RawBytes(3000));
        var bytes = ImageUploads.RawBytes(2000);
        var second = (await tenant.Member.CreateImageAsync("second", "raw", ImageUploads.Sha256(bytes))).Str("id");

        var (refused, problem) = await tenant.Member.UploadAsync(second, bytes);

        Assert.Equal(HttpStatusCode.TooManyRequests, refused);
        Assert.Contains("image_gb 1 used + 1 asked > 1 allowed", problem.Str("detail"), StringComparison.Ordinal);
        var (_, image) = await tenant.Member.GetJsonAsync($"/v1/images/{second}");
        Assert.Equal("ERROR", image.Str("state"));
        Assert.False(File.Exists(Path.Combine(cloud.ImageStorePath, second)));
        var (_, tenantRow) = await cloud.Http.GetJsonAsync($"/v1/tenants/{tenant.Id}");
        Assert.Equal("1", tenantRow.GetProperty("usage").Str("imageGb"));
        Assert.Equal(2, tenantRow.GetProperty("usage").GetProperty("images").GetInt32());
        // Created without them, the images quotas are the defaults.
        Assert.Equal(50, tenantRow.GetProperty("quota").GetProperty("images").GetInt32());

        Assert.Equal(HttpStatusCode.OK, (await tenant.Member.SendAsync(HttpMethod.Delete, $"/v1/images/{first}")).Status);
        var (again, uploaded) = await tenant.Member.UploadAsync(second, bytes);
        Assert.True(again == HttpStatusCode.OK, uploaded.ToString());
        Assert.Equal("ACTIVE", uploaded.Str("state"));
        var (_, after) = await cloud.Http.GetJsonAsync($"/v1/tenants/{tenant.Id}");
        Assert.Equal("1", after.GetProperty("usage").Str("imageGb"));
        Assert.Equal(1, after.GetProperty("usage").GetProperty("images").GetInt32());

        // A quota change that does not name the images quotas leaves them as they are.
        var (set, changed) = await cloud.Http.SendAsync(HttpMethod.Put, $"/v1/tenants/{tenant.Id}/quota", """{"instances":2,"vcpus":1,"memoryMb":"1024","diskGb":"10","snapshots":1}""");
        Assert.Equal(HttpStatusCode.OK, set);
        Assert.Equal("1", changed.GetProperty("quota").Str("imageGb"));
        Assert.Equal(50, changed.GetProperty("quota").GetProperty("images").GetInt32());
    }

    [Fact]
    public async Task CreateVm_FlavorDiskSmallerThanTheImageNeeds_IsRefused()
    {
        using var tenant = await cloud.CreateTenantAsync("imgmin");
        var id = await tenant.Member.UploadedImageAsync("big-min", "raw", ImageUploads.RawBytes(1000), minDiskGb: 20);
        var before = await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p", ("p", tenant.Id));
        var (status, problem) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"too-small","flavor":"m1.tiny","image":"{{id}}"}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("20 GB", problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(before, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p", ("p", tenant.Id)));
    }

    [Fact]
    public async Task Grpc_CreateGetDelete_SameRulesAsRest()
    {
        using var tenant = await cloud.CreateTenantAsync("imggrpc");
        var compute = new Compute.ComputeClient(_channel);
        var bad = await Assert.ThrowsAsync<RpcException>(() => compute.CreateImageAsync(
            new CreateImageRequest { Name = "x", Format = "iso", Sha256 = new string('0', 64) }, Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
        var image = await compute.CreateImageAsync(new CreateImageRequest { Name = "via-grpc", Format = "qcow2", Sha256 = new string('3', 64) }, Tenancy.Bearer(tenant.MemberToken));
        Assert.Equal("QUEUED", image.State);
        Assert.Equal(image.Id, (await compute.GetImageAsync(new GetImageRequest { Id = image.Id }, Tenancy.Bearer(tenant.ReaderToken))).Id);
        var reader = await Assert.ThrowsAsync<RpcException>(() => compute.DeleteImageAsync(new DeleteImageRequest { Id = image.Id }, Tenancy.Bearer(tenant.ReaderToken)).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, reader.StatusCode);
        Assert.Equal("DELETED", (await compute.DeleteImageAsync(new DeleteImageRequest { Id = image.Id }, Tenancy.Bearer(tenant.MemberToken))).State);
    }

    /// <summary>Every column of the image's row, as text: equal before and after means nothing changed.</summary>
    private async Task<string> RowAsync(string id) => (string)(await cloud.QueryAsync("SELECT i::text FROM images i WHERE id = @id", ("id", id)))!;

    private IEnumerable<string> StoreFilesOf(string id)
        => Directory.Exists(cloud.ImageStorePath)
            ? Directory.EnumerateFiles(cloud.ImageStorePath).Where(f => Path.GetFileName(f).Contains(id, StringComparison.Ordinal))
            : [];

    /// <summary>A VMDK descriptor (the small text file) whose one extent is <paramref name="extentPath"/>.</summary>
    internal static string VmdkDescriptor(string extentPath)
        => $"""
            # Disk DescriptorFile
            version=1
            CID=fffffffe
            parentCID=ffffffff
            createType="monolithicFlat"

            # Extent description
            RW 2048 FLAT "{extentPath}" 0

            # The Disk Data Base
            ddb.virtualHWVersion = "4"
            ddb.adapterType = "ide"

            """;

    private static byte[] WithMagic(byte[] bytes, int offset, ReadOnlySpan<byte> magic)
    {
        magic.CopyTo(bytes.AsSpan(offset));
        return bytes;
    }

    /// <summary>The fixed part of a qcow2 v3 header for a 64 MiB disk, optionally naming a backing file.</summary>
    internal static byte[] Qcow2Header(long backingFileOffset, ulong incompatibleFeatures = 0)
    {
        var header = new byte[4096];
        BinaryPrimitives.WriteUInt32BigEndian(header, 0x514649fb);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), 3);
        BinaryPrimitives.WriteInt64BigEndian(header.AsSpan(8), backingFileOffset);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(16), backingFileOffset == 0 ? 0u : 8u);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(20), 16);
        BinaryPrimitives.WriteInt64BigEndian(header.AsSpan(24), 64L << 20);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(72), incompatibleFeatures);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(100), 104);
        return header;
    }
}
