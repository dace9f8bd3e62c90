using System.Net;
using System.Text.Json;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Audit;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>
/// The audit trail records every mutating call of a run, on both wires, refused ones included,
/// with who made it, for which tenant, what it named and how it ended; reads are not recorded and
/// no secret ever is.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class AuditRecordingTests(CloudFixture cloud) : IDisposable
{
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    [Fact]
    public async Task Every_mutating_call_of_a_run_is_recorded_with_its_actor_tenant_and_result()
    {
        var since = AuditTrail.Since();
        using var tenant = await cloud.CreateTenantAsync("auditrun");
        var tokens = await TokenIdsAsync(tenant.Id);
        var vmId = await tenant.Member.CreateRunningVmAsync("audit-vm");
        var (deleteStatus, _) = await tenant.Member.SendAsync(HttpMethod.Delete, $"/v1/vms/{vmId}");
        var (readerStatus, _) = await tenant.Reader.PostAsync("/v1/vms", """{"name":"audit-refused","flavor":"t.nano"}""");
        var traceId = System.Diagnostics.ActivityTraceId.CreateRandom().ToHexString();
        using var anonymous = cloud.NewHttpClient();
        using var unauthenticated = new HttpRequestMessage(HttpMethod.Post, "/v1/vms") { Content = new StringContent("{}") };
        unauthenticated.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "not-a-token");
        unauthenticated.Headers.Add("traceparent", $"00-{traceId}-{System.Diagnostics.ActivitySpanId.CreateRandom().ToHexString()}-01");
        using var anonymousResponse = await anonymous.SendAsync(unauthenticated);
        var grpcRefusal = await Assert.ThrowsAsync<RpcException>(() => new Compute.ComputeClient(_channel)
            .DeleteVmAsync(new DeleteVmRequest { Id = vmId }, Tenancy.Bearer(tenant.ReaderToken)).ResponseAsync);
        await new Compute.ComputeClient(_channel).ListVmsAsync(new ListVmsRequest(), Tenancy.Bearer(tenant.MemberToken));
        Assert.Equal(HttpStatusCode.OK, (await tenant.Member.GetJsonAsync("/v1/vms")).Status);
        Assert.Equal(HttpStatusCode.Accepted, deleteStatus);
        Assert.Equal(HttpStatusCode.Forbidden, readerStatus);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymousResponse.StatusCode);
        Assert.Equal(StatusCode.PermissionDenied, grpcRefusal.StatusCode);

        var query = $"since={since}";
        var events = await cloud.Http.WaitForAuditAsync(query, found => found.Any(e => e.Field("action") == "cloud.compute.v1.Compute/DeleteVm" && e.Field("tenant") == tenant.Id));
        var all = AuditTrail.Describe(events);
        // Tests of one collection run one at a time, and "since" is read from the controller's own clock: these are this test's calls.
        var ours = events;

        var tenantCreate = Single(ours, e => e.Field("action") == "POST /v1/tenants" && e.Field("status") == "201", all);
        Assert.Equal(("operator", "operator", ""), (tenantCreate.Field("actor"), tenantCreate.Field("role"), tenantCreate.Field("tenant")));
        Assert.True(ours.Count(e => e.Field("action") == "POST /v1/tokens" && e.Field("actor") == "operator" && e.Field("status") == "201") >= 2, all);

        var create = Single(ours, e => e.Field("action") == "POST /v1/vms" && e.Field("status") == "202", all);
        Assert.Equal(($"token:{tokens["member"]}", "member-token", "member", tenant.Id), (create.Field("actor"), create.Field("actorName"), create.Field("role"), create.Field("tenant")));
        Assert.Equal("ok", create.Field("result"));
        Assert.Matches("^(127\\.0\\.0\\.1|::1)$", create.Field("sourceAddress"));

        var delete = Single(ours, e => e.Field("action") == "DELETE /v1/vms/{id}", all);
        Assert.Equal((vmId, "202", $"token:{tokens["member"]}"), (delete.Field("targetId"), delete.Field("status"), delete.Field("actor")));

        var refused = Single(ours, e => e.Field("action") == "POST /v1/vms" && e.Field("status") == "403", all);
        Assert.Equal(($"token:{tokens["reader"]}", "reader", tenant.Id, "client_error"), (refused.Field("actor"), refused.Field("role"), refused.Field("tenant"), refused.Field("result")));

        var unauthorized = Single(events, e => e.Field("traceId") == traceId, all);
        Assert.Equal(("POST /v1/vms", "anonymous", "", "401", ""), (unauthorized.Field("action"), unauthorized.Field("actor"), unauthorized.Field("role"), unauthorized.Field("status"), unauthorized.Field("tenant")));

        var grpc = Single(ours, e => e.Field("action") == "cloud.compute.v1.Compute/DeleteVm", all);
        Assert.Equal(($"token:{tokens["reader"]}", "403", "7", tenant.Id), (grpc.Field("actor"), grpc.Field("status"), grpc.Field("grpcStatus"), grpc.Field("tenant")));

        Assert.DoesNotContain(events, e => e.Field("action").StartsWith("GET ", StringComparison.Ordinal) || e.Field("action").EndsWith("/ListVms", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_grpc_write_is_recorded_with_the_resource_its_request_names()
    {
        var since = AuditTrail.Since();
        using var tenant = await cloud.CreateTenantAsync("auditgrpc");
        var vmId = await tenant.Member.CreateRunningVmAsync("audit-grpc-vm");

        var operation = await new Compute.ComputeClient(_channel).RebootVmAsync(new VmActionRequest { Id = vmId }, Tenancy.Bearer(tenant.MemberToken));
        var events = await tenant.Member.WaitForAuditAsync($"since={since}&action={Uri.EscapeDataString("cloud.compute.v1.Compute/")}", found => found.Count > 0);

        var reboot = Assert.Single(events);
        Assert.Equal(("cloud.compute.v1.Compute/RebootVm", vmId, "200", "0", "member"),
            (reboot.Field("action"), reboot.Field("targetId"), reboot.Field("status"), reboot.Field("grpcStatus"), reboot.Field("role")));
        Assert.False(string.IsNullOrEmpty(operation.Id));
    }

    [Fact]
    public async Task A_node_registering_is_recorded_and_its_heartbeats_are_not()
    {
        // The fixture's two agents registered as it started; other tests' bad registrations are recorded too, refused.
        var events = await cloud.Http.WaitForAuditAsync("actor=node", found => found.Count(e => e.Field("status") == "200") >= 2);

        Assert.True(events.Count(e => (e.Field("status"), e.Field("grpcStatus")) == ("200", "0")) >= 2, AuditTrail.Describe(events));
        Assert.All(events, e => Assert.Equal(("cloud.node.v1.NodeRegistry/Register", "node", ""), (e.Field("action"), e.Field("role"), e.Field("tenant"))));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM audit_events WHERE action LIKE '%Heartbeat%'"));
    }

    [Fact]
    public async Task No_event_holds_a_token_secret_or_a_request_body()
    {
        var since = AuditTrail.Since();
        using var tenant = await cloud.CreateTenantAsync("auditsecret");
        var secret = tenant.MemberToken;
        Assert.Equal(HttpStatusCode.Created, (await tenant.Member.PostAsync("/v1/server-groups", """{"name":"audit-body-marker","policy":"anti-affinity"}""")).Status);

        var events = await cloud.Http.WaitForAuditAsync($"since={since}", found => found.Any(e => e.Field("action") == "POST /v1/server-groups" && e.Field("tenant") == tenant.Id));
        var rows = (string)(await cloud.QueryAsync("SELECT string_agg(t::text, E'\\n') FROM audit_events t WHERE time >= now() - interval '1 minute'"))!;

        Assert.Contains(events, e => e.Field("action") == "POST /v1/server-groups" && e.Field("actorName") == "member-token");
        Assert.Contains(events, e => e.Field("action") == "POST /v1/tokens");
        Assert.DoesNotContain(secret, rows, StringComparison.Ordinal);
        Assert.DoesNotContain(TokenAuthHash(secret), rows, StringComparison.Ordinal);
        Assert.DoesNotContain("audit-body-marker", rows, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cloud.compute.v1.Compute/CreateVm", null)]
    [InlineData("cloud.compute.v1.Compute/DeleteVm", "vm-id")]
    [InlineData("cloud.compute.v1.Compute/CreateSnapshot", "vm-id")]
    [InlineData("cloud.compute.v1.Compute/AddImageMember", "image-id")]
    [InlineData("cloud.compute.v1.Compute/DrainNode", "node-name")]
    public void A_grpc_request_names_its_target_as_the_rest_route_would(string method, string? expected)
    {
        Google.Protobuf.IMessage request = method[(method.LastIndexOf('/') + 1)..] switch
        {
            "CreateVm" => new CreateVmRequest { Name = "new-vm", Image = "image-id", Flavor = "t.nano" },
            "DeleteVm" => new DeleteVmRequest { Id = "vm-id" },
            "CreateSnapshot" => new CreateSnapshotRequest { VmId = "vm-id", Name = "snap" },
            "AddImageMember" => new ImageMemberRequest { Image = "image-id", Tenant = "other" },
            _ => new DrainNodeRequest { Name = "node-name" },
        };

        Assert.Equal(expected, AuditTargetInterceptor.TargetOf(request, "/" + method));
    }

    [Fact]
    public void Options_that_make_no_sense_are_refused_naming_the_setting()
    {
        var result = new AuditOptionsValidator().Validate(null, new AuditOptions { Retention = TimeSpan.Zero, WriteBatchSize = 0 });

        Assert.True(result.Failed);
        Assert.Contains(result.Failures!, f => f.StartsWith("Audit:Retention ", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.StartsWith("Audit:WriteBatchSize ", StringComparison.Ordinal));
        Assert.True(new AuditOptionsValidator().Validate(null, new AuditOptions()).Succeeded);
    }

    private static JsonElement Single(IEnumerable<JsonElement> events, Func<JsonElement, bool> match, string all)
    {
        var found = events.Where(match).ToList();
        Assert.True(found.Count == 1, $"Expected one matching event, found {found.Count}, in:\n{all}");
        return found[0];
    }

    private static string TokenAuthHash(string secret) => Cloud.Controller.Auth.TokenAuthenticator.Sha256Hex(secret);

    /// <summary>The ids of the tenant's tokens, by role.</summary>
    private async Task<Dictionary<string, string>> TokenIdsAsync(string tenantId)
    {
        var (status, list) = await cloud.Http.GetJsonAsync($"/v1/tokens?tenant={tenantId}");
        Assert.Equal(HttpStatusCode.OK, status);
        return list.GetProperty("tokens").EnumerateArray().ToDictionary(t => t.Str("role"), t => t.Str("id"));
    }

    public void Dispose() => _channel.Dispose();
}
