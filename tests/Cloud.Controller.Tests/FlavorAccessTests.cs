using System.Net;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>Private flavors: invisible and unusable to tenants until an operator grants them one.</summary>
[Collection(CloudCollection.Name)]
public sealed class FlavorAccessTests(CloudFixture cloud)
{
    [Fact]
    public async Task A_private_flavor_is_used_only_by_the_tenants_it_was_granted_to()
    {
        using var granted = await cloud.CreateTenantAsync("granted");
        using var other = await cloud.CreateTenantAsync("other");
        var flavor = $"p.{Guid.NewGuid():N}"[..20];
        var (created, _) = await cloud.Http.PostAsync("/v1/flavors", $$"""{"name":"{{flavor}}","vcpus":1,"memoryMb":"64","diskGb":"0","isPublic":false}""");
        Assert.Equal(HttpStatusCode.Created, created);
        var create = $$"""{"name":"private-vm","flavor":"{{flavor}}"}""";

        Assert.DoesNotContain(flavor, (await granted.Member.GetJsonAsync("/v1/flavors")).Body.ToString(), StringComparison.Ordinal);
        var (hidden, problem) = await granted.Member.PostAsync("/v1/vms", create);
        Assert.Equal(HttpStatusCode.NotFound, hidden);
        Assert.Equal($"Flavor '{flavor}' does not exist.", problem.Str("detail"));

        var (denied, _) = await granted.Member.SendAsync(HttpMethod.Put, $"/v1/flavors/{flavor}/access/{granted.Id}");
        Assert.Equal(HttpStatusCode.Forbidden, denied);
        Assert.Equal(HttpStatusCode.OK, (await cloud.Http.SendAsync(HttpMethod.Put, $"/v1/flavors/{flavor}/access/{granted.Id}")).Status);
        Assert.Equal(HttpStatusCode.OK, (await cloud.Http.SendAsync(HttpMethod.Put, $"/v1/flavors/{flavor}/access/{granted.Id}")).Status);

        Assert.Contains(flavor, (await granted.Reader.GetJsonAsync("/v1/flavors")).Body.ToString(), StringComparison.Ordinal);
        var vmId = await granted.Member.CreateRunningVmAsync("private-vm", flavor);
        Assert.Equal(flavor, (await granted.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("flavor"));
        Assert.DoesNotContain(flavor, (await other.Member.GetJsonAsync("/v1/flavors")).Body.ToString(), StringComparison.Ordinal);
        using var channel = cloud.NewGrpcChannel();
        var error = await Assert.ThrowsAsync<RpcException>(() => new Compute.ComputeClient(channel)
            .CreateVmAsync(new CreateVmRequest { Name = "sneak", Flavor = flavor }, Tenancy.Bearer(other.MemberToken)).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, error.StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/flavors/{flavor}/access/{granted.Id}")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await granted.Member.PostAsync("/v1/vms", create)).Status);
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE flavor_name = @f", ("f", flavor)));
    }

    [Theory]
    [InlineData("m1.tiny", "{tenant}", HttpStatusCode.BadRequest, "is public")]
    [InlineData("no-such-flavor", "{tenant}", HttpStatusCode.NotFound, "Flavor 'no-such-flavor'")]
    [InlineData("m1.tiny", "Not_A_Tenant", HttpStatusCode.BadRequest, "tenant 'Not_A_Tenant' is invalid")]
    public async Task A_grant_that_makes_no_sense_is_refused_and_changes_nothing(string flavor, string tenant, HttpStatusCode expected, string detail)
    {
        using var owner = await cloud.CreateTenantAsync("grant");
        var before = await cloud.ScalarAsync("SELECT count(*) FROM flavor_access");

        var (status, problem) = await cloud.Http.SendAsync(HttpMethod.Put, $"/v1/flavors/{flavor}/access/{tenant.Replace("{tenant}", owner.Id, StringComparison.Ordinal)}");

        Assert.Equal(expected, status);
        Assert.Contains(detail, problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(before, await cloud.ScalarAsync("SELECT count(*) FROM flavor_access"));
    }
}
