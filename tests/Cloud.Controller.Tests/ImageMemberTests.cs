using System.Net;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>
/// Image members: sharing with a tenant id that does not exist answers exactly as sharing with
/// another tenant's, on both wires, so that the answers reveal no tenant ids.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class ImageMemberTests(CloudFixture cloud) : IDisposable
{
    private const string Placeholder = "<tenant>";

    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    [Fact]
    public async Task Adding_and_removing_an_unknown_or_a_foreign_tenant_answer_alike_over_rest()
    {
        using var owner = await cloud.CreateTenantAsync("mbrown");
        using var foreign = await cloud.CreateTenantAsync("mbrfor");
        var unknown = UnknownTenantId();
        var id = await owner.Member.UploadedImageAsync("members-rest", "raw", ImageUploads.RawBytes(2000), visibility: "shared");

        var addForeign = await owner.Member.SendAsync(HttpMethod.Put, $"/v1/images/{id}/members/{foreign.Id}");
        var removeForeign = await owner.Member.SendAsync(HttpMethod.Delete, $"/v1/images/{id}/members/{foreign.Id}");
        var addUnknown = await owner.Member.SendAsync(HttpMethod.Put, $"/v1/images/{id}/members/{unknown}");
        var removeUnknown = await owner.Member.SendAsync(HttpMethod.Delete, $"/v1/images/{id}/members/{unknown}");

        Assert.Equal(HttpStatusCode.OK, addForeign.Status);
        Assert.Equal([foreign.Id], addForeign.Body.GetProperty("members").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal((addForeign.Status, Neutral(addForeign.Body, foreign.Id)), (addUnknown.Status, Neutral(addUnknown.Body, unknown)));
        Assert.Equal(HttpStatusCode.OK, removeForeign.Status);
        Assert.Equal((removeForeign.Status, Neutral(removeForeign.Body, foreign.Id)), (removeUnknown.Status, Neutral(removeUnknown.Body, unknown)));
    }

    [Fact]
    public async Task Adding_and_removing_an_unknown_or_a_foreign_tenant_answer_alike_over_grpc()
    {
        using var owner = await cloud.CreateTenantAsync("mbgown");
        using var foreign = await cloud.CreateTenantAsync("mbgfor");
        using var member = await cloud.CreateTenantAsync("mbgmem");
        var unknown = UnknownTenantId();
        var id = await owner.Member.UploadedImageAsync("members-grpc", "raw", ImageUploads.RawBytes(2000), visibility: "shared");
        var compute = new Compute.ComputeClient(_channel);
        var asOwner = Tenancy.Bearer(owner.MemberToken);

        var addForeign = await compute.AddImageMemberAsync(new ImageMemberRequest { Image = id, Tenant = foreign.Id }, asOwner);
        var removeForeign = await compute.RemoveImageMemberAsync(new ImageMemberRequest { Image = id, Tenant = foreign.Id }, asOwner);
        var addUnknown = await compute.AddImageMemberAsync(new ImageMemberRequest { Image = id, Tenant = unknown }, asOwner);
        var removeUnknown = await compute.RemoveImageMemberAsync(new ImageMemberRequest { Image = id, Tenant = unknown }, asOwner);

        Assert.Equal([foreign.Id], addForeign.Members);
        Assert.Equal(addForeign.ToString().Replace(foreign.Id, Placeholder, StringComparison.Ordinal), addUnknown.ToString().Replace(unknown, Placeholder, StringComparison.Ordinal));
        Assert.Empty(removeForeign.Members);
        Assert.Equal(removeForeign, removeUnknown);

        // A tenant that may use the image but not manage it is refused alike, too.
        await compute.AddImageMemberAsync(new ImageMemberRequest { Image = id, Tenant = member.Id }, asOwner);
        var refusedForeign = await Assert.ThrowsAsync<RpcException>(() => compute.AddImageMemberAsync(
            new ImageMemberRequest { Image = id, Tenant = foreign.Id }, Tenancy.Bearer(member.MemberToken)).ResponseAsync);
        var refusedUnknown = await Assert.ThrowsAsync<RpcException>(() => compute.AddImageMemberAsync(
            new ImageMemberRequest { Image = id, Tenant = unknown }, Tenancy.Bearer(member.MemberToken)).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, refusedForeign.StatusCode);
        Assert.Equal((refusedForeign.StatusCode, refusedForeign.Status.Detail), (refusedUnknown.StatusCode, refusedUnknown.Status.Detail));
    }

    [Fact]
    public async Task A_tenant_created_after_its_id_was_shared_with_does_not_inherit_the_share()
    {
        using var owner = await cloud.CreateTenantAsync("mblate");
        var id = await owner.Member.UploadedImageAsync("members-early", "raw", ImageUploads.RawBytes(2000), visibility: "shared");
        var stillUnknown = UnknownTenantId();
        var later = UnknownTenantId();
        Assert.Equal(HttpStatusCode.OK, (await owner.Member.SendAsync(HttpMethod.Put, $"/v1/images/{id}/members/{stillUnknown}")).Status);
        Assert.Equal(HttpStatusCode.OK, (await owner.Member.SendAsync(HttpMethod.Put, $"/v1/images/{id}/members/{later}")).Status);
        var (created, _) = await cloud.Http.PostAsync("/v1/tenants", $$"""{"id":"{{later}}","displayName":"Late tenant"}""");
        Assert.Equal(HttpStatusCode.Created, created);
        using var lateReader = cloud.ClientFor(await cloud.CreateTokenAsync(later, "reader"));

        Assert.Equal(HttpStatusCode.NotFound, (await lateReader.GetJsonAsync($"/v1/images/{id}")).Status);
        var (_, image) = await owner.Member.GetJsonAsync($"/v1/images/{id}");
        Assert.Equal([stillUnknown], image.GetProperty("members").EnumerateArray().Select(m => m.GetString()));
    }

    private static string UnknownTenantId() => $"ghost-{Guid.NewGuid():N}"[..20];

    private static string Neutral(System.Text.Json.JsonElement body, string tenant) => body.GetRawText().Replace(tenant, Placeholder, StringComparison.Ordinal);

    public void Dispose() => _channel.Dispose();
}
