using System.Net;
using System.Text.Json;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Audit;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Cloud.Controller.Tests;

/// <summary>
/// Reading the audit trail: a tenant sees its own events and nothing of another tenant's or of
/// the operators'; operators see everything; bad filters are refused; retention deletes old events
/// and keeps new ones; cloudctl lists them.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class AuditReadTests(CloudFixture cloud) : IDisposable
{
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    [Fact]
    public async Task A_tenant_sees_its_own_events_and_none_of_another_tenants_while_an_operator_sees_both()
    {
        var since = AuditTrail.Since();
        using var alpha = await cloud.CreateTenantAsync("auditalpha");
        using var beta = await cloud.CreateTenantAsync("auditbeta");
        Assert.Equal(HttpStatusCode.Created, (await alpha.Member.PostAsync("/v1/server-groups", """{"name":"alpha-group","policy":"anti-affinity"}""")).Status);
        Assert.Equal(HttpStatusCode.Created, (await beta.Member.PostAsync("/v1/server-groups", """{"name":"beta-group","policy":"anti-affinity"}""")).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await beta.Reader.PostAsync("/v1/server-groups", """{"name":"beta-refused","policy":"anti-affinity"}""")).Status);

        var operatorView = await cloud.Http.WaitForAuditAsync($"since={since}",
            found => found.Count(e => e.Field("action") == "POST /v1/server-groups") == 3);
        var alphaView = await alpha.Member.AuditEventsAsync($"since={since}");
        var alphaReaderView = await alpha.Reader.AuditEventsAsync($"since={since}");
        var betaView = await beta.Reader.AuditEventsAsync($"since={since}");
        var grpcView = await new Compute.ComputeClient(_channel).ListAuditEventsAsync(new ListAuditEventsRequest(), Tenancy.Bearer(alpha.ReaderToken));

        Assert.Contains(operatorView, e => e.Field("tenant") == alpha.Id);
        Assert.Contains(operatorView, e => e.Field("tenant") == beta.Id);
        Assert.Contains(operatorView, e => e.Field("actor") == "operator" && e.Field("tenant") == "");
        Assert.NotEmpty(alphaView);
        Assert.All(alphaView, e => Assert.Equal(alpha.Id, e.Field("tenant")));
        Assert.All(alphaReaderView, e => Assert.Equal(alpha.Id, e.Field("tenant")));
        Assert.Contains(alphaView, e => e.Field("action") == "POST /v1/server-groups" && e.Field("role") == "member");
        Assert.All(betaView, e => Assert.Equal(beta.Id, e.Field("tenant")));
        Assert.Equal(2, betaView.Count(e => e.Field("action") == "POST /v1/server-groups"));
        Assert.NotEmpty(grpcView.Events);
        Assert.All(grpcView.Events, e => Assert.Equal(alpha.Id, e.Tenant));
        Assert.Equal(HttpStatusCode.NotFound, (await alpha.Member.GetJsonAsync($"/v1/audit?tenant={beta.Id}")).Status);
        var operatorAlpha = await cloud.Http.AuditEventsAsync($"since={since}&tenant={alpha.Id}");
        Assert.Equal(alphaView.Select(e => e.Field("id")), operatorAlpha.Select(e => e.Field("id")));
    }

    [Fact]
    public async Task Filters_narrow_the_events_and_pages_follow_each_other_without_overlap()
    {
        var since = AuditTrail.Since();
        using var tenant = await cloud.CreateTenantAsync("auditfilter");
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.Created, (await tenant.Member.PostAsync("/v1/server-groups", $$"""{"name":"filter-{{i}}","policy":"anti-affinity"}""")).Status);
        }
        Assert.Equal(HttpStatusCode.Forbidden, (await tenant.Reader.PostAsync("/v1/server-groups", """{"name":"filter-refused","policy":"anti-affinity"}""")).Status);
        var all = await tenant.Member.WaitForAuditAsync($"since={since}", found => found.Count >= 4);
        var tokens = all.Select(e => e.Field("actor")).Distinct().ToList();

        var denied = await tenant.Member.AuditEventsAsync($"since={since}&result=denied");
        var ok = await tenant.Member.AuditEventsAsync($"since={since}&result=ok&action={Uri.EscapeDataString("POST /v1/server")}");
        var reader = all.Single(e => e.Field("role") == "reader");
        var byActor = await tenant.Member.AuditEventsAsync($"since={since}&actor={reader.Field("actor")["token:".Length..]}");
        var none = await tenant.Member.AuditEventsAsync($"until={since}");
        var (_, first) = await tenant.Member.GetJsonAsync($"/v1/audit?since={since}&page_size=2");
        var (_, second) = await tenant.Member.GetJsonAsync($"/v1/audit?since={since}&page_size=2&page_token={first.Str("nextPageToken")}");

        Assert.Equal(4, all.Count);
        Assert.Equal(2, tokens.Count);
        Assert.Equal("403", Assert.Single(denied).Field("status"));
        Assert.Equal(3, ok.Count);
        Assert.Equal(reader.Field("id"), Assert.Single(byActor).Field("id"));
        Assert.Empty(none);
        var pages = first.GetProperty("events").EnumerateArray().Concat(second.GetProperty("events").EnumerateArray()).Select(e => e.Field("id")).ToList();
        Assert.Equal(all.Select(e => e.Field("id")), pages);
        Assert.Equal(all.OrderByDescending(e => DateTimeOffset.Parse(e.Field("time"), System.Globalization.CultureInfo.InvariantCulture)).Select(e => e.Field("id")), all.Select(e => e.Field("id")));
    }

    [Theory]
    [InlineData("page_size=-1")]
    [InlineData("page_size=501")]
    [InlineData("page_size=many")]
    [InlineData("page_token=not-a-token")]
    [InlineData("since=yesterday")]
    [InlineData("since=2026-12-08T00:00:00")]
    [InlineData("since=2026-12-08T00:00:00Z&until=2026-12-07T00:00:00Z")]
    [InlineData("result=bogus")]
    [InlineData("actor=bob")]
    [InlineData("tenant=Not_A_Tenant")]
    [InlineData("action=POST%01")]
    public async Task A_bad_filter_is_refused_as_invalid_argument(string query)
    {
        var (status, problem) = await cloud.Http.GetJsonAsync($"/v1/audit?{query}");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("INVALID_ARGUMENT", problem.Str("code"));
    }

    [Fact]
    public async Task Reading_the_trail_needs_a_valid_token_on_both_wires()
    {
        using var anonymous = cloud.NewHttpClient();
        using var response = await anonymous.GetAsync("/v1/audit");
        var grpc = await Assert.ThrowsAsync<RpcException>(() => new Compute.ComputeClient(_channel)
            .ListAuditEventsAsync(new ListAuditEventsRequest(), new CallOptions(deadline: DateTime.UtcNow.AddSeconds(30))).ResponseAsync);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(StatusCode.Unauthenticated, grpc.StatusCode);
    }

    [Fact]
    public async Task Retention_deletes_events_past_it_and_keeps_the_newer_ones()
    {
        var tenant = $"ret-{Guid.NewGuid():N}"[..16];
        foreach (var age in new[] { "100 days", "91 days", "200 days", "89 days", "1 hour" })
        {
            await cloud.ScalarAsync(
                $"INSERT INTO audit_events (id, time, actor, tenant_id, action, status) VALUES (gen_random_uuid(), now() - interval '{age}', 'anonymous', @t, 'POST /v1/vms', 401) RETURNING 1",
                ("t", tenant));
        }

        var deleted = await cloud.ControllerServices.GetRequiredService<AuditRetention>().PurgeOnceAsync(CancellationToken.None);
        var left = await cloud.ScalarAsync("SELECT count(*) FROM audit_events WHERE tenant_id = @t", ("t", tenant));
        var oldest = await cloud.ScalarAsync("SELECT extract(day FROM now() - min(time))::bigint FROM audit_events WHERE tenant_id = @t", ("t", tenant));

        Assert.True(deleted >= 3, $"deleted {deleted}");
        Assert.Equal(2, left);
        Assert.Equal(89, oldest);
    }

    [Fact]
    public async Task Cloudctl_lists_the_events_with_filters_as_a_table_and_as_json()
    {
        var since = AuditTrail.Since();
        using var tenant = await cloud.CreateTenantAsync("auditcli");
        Assert.Equal(HttpStatusCode.Created, (await tenant.Member.PostAsync("/v1/server-groups", """{"name":"cli-group","policy":"anti-affinity"}""")).Status);
        await tenant.Member.WaitForAuditAsync($"since={since}", found => found.Count > 0);
        var operatorConfig = Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken);
        var memberConfig = Cloudctl.WriteConfig(cloud.RestUrl, tenant.MemberToken);
        try
        {
            var (tableExit, table) = await Cloudctl.RunAsync(operatorConfig, "audit", "list", "--tenant", tenant.Id, "--since", "10m");
            var (jsonExit, json) = await Cloudctl.RunAsync(memberConfig, "audit", "list", "--action", "POST /v1/server-groups", "--result", "ok", "-o", "json");
            var bad = await Assert.ThrowsAsync<Cloud.Cli.CliException>(() => Cloudctl.RunAsync(operatorConfig, "audit", "list", "--result", "bogus"));

            Assert.Equal(0, tableExit);
            var row = table.Split('\n').Single(l => l.Contains("POST /v1/server-groups", StringComparison.Ordinal));
            Assert.Contains(tenant.Id, row, StringComparison.Ordinal);
            Assert.Contains("member-token", row, StringComparison.Ordinal);
            Assert.Contains("201", row, StringComparison.Ordinal);
            Assert.Equal(0, jsonExit);
            using var doc = JsonDocument.Parse(json);
            var listed = Assert.Single(doc.RootElement.GetProperty("events").EnumerateArray());
            Assert.Equal(tenant.Id, listed.Field("tenant"));
            Assert.StartsWith("INVALID_ARGUMENT: result must be one of", bad.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(operatorConfig);
            File.Delete(memberConfig);
        }
    }

    public void Dispose() => _channel.Dispose();
}
