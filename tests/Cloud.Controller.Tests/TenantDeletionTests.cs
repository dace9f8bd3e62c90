using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Cloud.Cli;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Tests;

/// <summary>
/// DELETE /v1/tenants/{id}: refused while the tenant owns VMs, or with cascade everything goes
/// (VMs through their own deletions, images, memberships, tokens at once, quota, server groups).
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class TenantDeletionTests(CloudFixture cloud) : IDisposable
{
    /// <summary>Auth:TokenRecheckInterval (2 s by default), the watch's poll, and slack for a loaded machine.</summary>
    private static readonly TimeSpan WatchBound = TimeSpan.FromSeconds(8);

    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();
    private readonly AgentClients _agents = new(cloud);

    [Fact]
    public async Task A_tenant_that_owns_a_vm_is_refused_until_the_vm_is_deleted()
    {
        using var tenant = await cloud.CreateTenantAsync("delrefuse");
        var vmId = await tenant.Member.CreateRunningVmAsync("keeps-it");

        var (status, problem) = await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/tenants/{tenant.Id}");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("FAILED_PRECONDITION", problem.Str("code"));
        Assert.Contains($"Tenant '{tenant.Id}' still owns 1 VM(s) and 0 snapshot(s)", problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(1, problem.GetProperty("details").GetProperty("vms").GetInt32());
        // Nothing changed: the tenant is active and its tokens work.
        Assert.Equal("ACTIVE", (await cloud.Http.GetJsonAsync($"/v1/tenants/{tenant.Id}")).Body.Str("state"));
        Assert.Equal(HttpStatusCode.OK, (await tenant.Member.GetJsonAsync("/v1/vms")).Status);

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        var deleted = await cloud.Http.RunAsync(HttpMethod.Delete, $"/v1/tenants/{tenant.Id}");
        Assert.True(deleted.Str("state") == "SUCCEEDED", deleted.ToString());
        Assert.Equal(("tenant.delete", tenant.Id, false), (deleted.Str("kind"), deleted.Str("targetId"), deleted.GetProperty("tenantDeletion").GetProperty("cascade").GetBoolean()));
        Assert.Equal(2, deleted.GetProperty("tenantDeletion").GetProperty("tokens").GetInt32());

        Assert.Equal(HttpStatusCode.NotFound, (await cloud.Http.GetJsonAsync($"/v1/tenants/{tenant.Id}")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await tenant.Member.GetJsonAsync("/v1/vms")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await tenant.Reader.GetJsonAsync("/v1/vms")).Status);
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM api_tokens WHERE tenant_id = @t", ("t", tenant.Id)));
        // Deleting it again: it no longer exists.
        Assert.Equal(HttpStatusCode.NotFound, (await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/tenants/{tenant.Id}")).Status);
    }

    [Fact]
    public async Task Cascade_deletes_vms_snapshots_images_memberships_groups_and_revokes_tokens_at_once()
    {
        using var tenant = await cloud.CreateTenantAsync("delcascade");
        using var other = await cloud.CreateTenantAsync("delother");
        var vmIds = new[] { await tenant.Member.CreateRunningVmAsync("c1"), await tenant.Member.CreateRunningVmAsync("c2") };
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmIds[0]}/snapshots", """{"name":"s1"}""")).Str("state"));
        var ownImage = await tenant.Member.UploadedImageAsync("del-own", "raw", ImageUploads.RawBytes(3000), visibility: "shared");
        var theirImage = await other.Member.UploadedImageAsync("del-theirs", "raw", ImageUploads.RawBytes(3000), visibility: "shared");
        Assert.True((await tenant.Member.SendAsync(HttpMethod.Put, $"/v1/images/{ownImage}/members/{other.Id}")).Status == HttpStatusCode.OK);
        Assert.True((await other.Member.SendAsync(HttpMethod.Put, $"/v1/images/{theirImage}/members/{tenant.Id}")).Status == HttpStatusCode.OK);
        Assert.Equal(HttpStatusCode.Created, (await tenant.Member.PostAsync("/v1/server-groups", """{"name":"del-group","policy":"soft-anti-affinity"}""")).Status);
        Assert.True(File.Exists(Path.Combine(cloud.ImageStorePath, ownImage)));

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var watchRequest = new HttpRequestMessage(HttpMethod.Get, "/v1/vms/watch");
        using var watch = await tenant.Member.SendAsync(watchRequest, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        using var events = new StreamReader(await watch.Content.ReadAsStreamAsync(deadline.Token));

        var (status, started) = await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/tenants/{tenant.Id}?cascade=true");
        var asked = Stopwatch.StartNew();
        Assert.True(status == HttpStatusCode.Accepted, started.ToString());
        // The tokens are revoked by the request itself, before any VM is gone.
        Assert.Equal(HttpStatusCode.Unauthorized, (await tenant.Member.GetJsonAsync("/v1/vms")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await tenant.Reader.GetJsonAsync("/v1/vms")).Status);
        var problem = await NextErrorEventAsync(events, deadline.Token);
        Assert.True(asked.Elapsed < WatchBound, $"The watch ended {asked.Elapsed} after the deletion was asked for.");
        Assert.Equal("UNAUTHENTICATED", problem.Str("code"));

        var done = await cloud.Http.WaitForOperationAsync(started.Str("id"));
        Assert.True(done.Str("state") == "SUCCEEDED", done.ToString());
        var outcome = done.GetProperty("tenantDeletion");
        Assert.Equal((true, 2, 1, 2, 2, 1), (outcome.GetProperty("cascade").GetBoolean(), outcome.GetProperty("vms").GetInt32(), outcome.GetProperty("images").GetInt32(),
            outcome.GetProperty("imageMemberships").GetInt32(), outcome.GetProperty("tokens").GetInt32(), outcome.GetProperty("serverGroups").GetInt32()));

        foreach (var node in new[] { "test-node-1", "test-node-2" })
        {
            var guests = (await (await _agents.ForAsync(node)).ListVmsAsync(new AgentV1.ListVmsRequest())).Vms.Select(v => v.VmId).ToList();
            Assert.DoesNotContain(guests, g => vmIds.Any(id => Guid.Parse(id).ToString("N") == g));
        }
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @t", ("t", tenant.Id)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM snapshots WHERE project_id = @t", ("t", tenant.Id)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM consumers WHERE project_id = @t", ("t", tenant.Id)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = ANY(@ids)", ("ids", vmIds.Select(Guid.Parse).ToArray())));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM images WHERE project_id = @t AND state <> 'DELETED'", ("t", tenant.Id)));
        Assert.False(File.Exists(Path.Combine(cloud.ImageStorePath, ownImage)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM image_members WHERE tenant_id = @t OR image_id = @i", ("t", tenant.Id), ("i", ownImage)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM server_groups WHERE project_id = @t", ("t", tenant.Id)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM tenants WHERE id = @t", ("t", tenant.Id)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM api_tokens WHERE tenant_id = @t", ("t", tenant.Id)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM operations WHERE project_id = @t", ("t", tenant.Id)));
        // The other tenant keeps its image, without the deleted tenant as a member.
        var (_, theirs) = await other.Member.GetJsonAsync($"/v1/images/{theirImage}");
        Assert.Equal("ACTIVE", theirs.Str("state"));
        Assert.False(theirs.TryGetProperty("members", out var members) && members.EnumerateArray().Any(), theirs.ToString());
        Assert.Equal(HttpStatusCode.NotFound, (await other.Member.GetJsonAsync($"/v1/images/{ownImage}")).Status);
    }

    [Fact]
    public async Task Cascade_while_a_vm_is_being_created_and_another_snapshotted_deletes_both()
    {
        using var tenant = await cloud.CreateTenantAsync("delbusy");
        var running = await tenant.Member.CreateRunningVmAsync("busy-1");
        var (snapshotStatus, snapshotting) = await tenant.Member.PostAsync($"/v1/vms/{running}/snapshots", """{"name":"midway"}""");
        Assert.Equal(HttpStatusCode.Accepted, snapshotStatus);
        var (createStatus, creating) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"busy-2","flavor":"{{Tenancy.Nano}}"}""");
        Assert.Equal(HttpStatusCode.Accepted, createStatus);
        var vmIds = new[] { Guid.Parse(running), Guid.Parse(creating.Str("targetId")) };

        var done = await cloud.Http.RunAsync(HttpMethod.Delete, $"/v1/tenants/{tenant.Id}?cascade=true");

        Assert.True(done.Str("state") == "SUCCEEDED", done.ToString());
        Assert.Equal(2, done.GetProperty("tenantDeletion").GetProperty("vms").GetInt32());
        foreach (var node in new[] { "test-node-1", "test-node-2" })
        {
            var guests = (await (await _agents.ForAsync(node)).ListVmsAsync(new AgentV1.ListVmsRequest())).Vms.Select(v => v.VmId).ToList();
            Assert.DoesNotContain(guests, g => vmIds.Any(id => id.ToString("N") == g));
        }
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE id = ANY(@ids)", ("ids", vmIds)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM allocations WHERE consumer_id = ANY(@ids)", ("ids", vmIds)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM snapshots WHERE project_id = @t", ("t", tenant.Id)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM tenants WHERE id = @t", ("t", tenant.Id)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM operations WHERE id = ANY(@ids) AND state IN ('PENDING', 'RUNNING')",
            ("ids", new[] { Guid.Parse(snapshotting.Str("id")), Guid.Parse(creating.Str("id")) })));
    }

    [Fact]
    public async Task Only_operators_delete_tenants_and_what_does_not_exist_is_not_found()
    {
        using var tenant = await cloud.CreateTenantAsync("delauth");
        foreach (var client in new[] { tenant.Member, tenant.Reader })
        {
            var (status, problem) = await client.SendAsync(HttpMethod.Delete, $"/v1/tenants/{tenant.Id}?cascade=true");
            Assert.True(status == HttpStatusCode.Forbidden, problem.ToString());
        }
        var compute = new Compute.ComputeClient(_channel);
        var refused = await Assert.ThrowsAsync<RpcException>(() => compute.DeleteTenantAsync(new DeleteTenantRequest { Id = tenant.Id, Cascade = true }, Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Equal("ACTIVE", (await cloud.Http.GetJsonAsync($"/v1/tenants/{tenant.Id}")).Body.Str("state"));
        Assert.Equal(HttpStatusCode.OK, (await tenant.Member.GetJsonAsync("/v1/vms")).Status);

        var (unknown, unknownProblem) = await cloud.Http.SendAsync(HttpMethod.Delete, "/v1/tenants/no-such-tenant");
        Assert.Equal((HttpStatusCode.NotFound, "Tenant 'no-such-tenant' does not exist."), (unknown, unknownProblem.Str("detail")));
        var grpcUnknown = await Assert.ThrowsAsync<RpcException>(() => compute.DeleteTenantAsync(new DeleteTenantRequest { Id = "no-such-tenant" }, Tenancy.Bearer(CloudFixture.OperatorToken)).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, grpcUnknown.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await cloud.Http.SendAsync(HttpMethod.Delete, "/v1/tenants/Not_A_Label")).Status);
        var (badFlag, flagProblem) = await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/tenants/{tenant.Id}?cascade=yes");
        Assert.Equal((HttpStatusCode.BadRequest, "cascade must be true or false."), (badFlag, flagProblem.Str("detail")));
        Assert.Equal("ACTIVE", (await cloud.Http.GetJsonAsync($"/v1/tenants/{tenant.Id}")).Body.Str("state"));
    }

    [Fact]
    public async Task Asking_again_while_the_deletion_runs_answers_the_same_operation_and_no_token_is_issued()
    {
        using var tenant = await cloud.CreateTenantAsync("delagain");
        await tenant.Member.CreateRunningVmAsync("again-1");
        await tenant.Member.CreateRunningVmAsync("again-2");
        var compute = new Compute.ComputeClient(_channel);
        var first = await compute.DeleteTenantAsync(new DeleteTenantRequest { Id = tenant.Id, Cascade = true }, Tenancy.Bearer(CloudFixture.OperatorToken));
        Assert.Equal(("tenant.delete", tenant.Id), (first.Kind, first.TargetId));

        var (status, second) = await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/tenants/{tenant.Id}?cascade=true");
        var (tokenStatus, tokenProblem) = await cloud.Http.PostAsync("/v1/tokens", $$"""{"tenant":"{{tenant.Id}}","name":"late","role":"member"}""");
        // Either still running (the same operation, and no new token), or already gone.
        if (status == HttpStatusCode.Accepted)
        {
            Assert.Equal(first.Id, second.Str("id"));
        }
        else
        {
            Assert.Equal(HttpStatusCode.NotFound, status);
        }
        Assert.True(tokenStatus is HttpStatusCode.Conflict or HttpStatusCode.NotFound, tokenProblem.ToString());
        Assert.Equal("SUCCEEDED", (await cloud.Http.WaitForOperationAsync(first.Id)).Str("state"));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM api_tokens WHERE tenant_id = @t", ("t", tenant.Id)));
    }

    [Fact]
    public async Task Cloudctl_deletes_a_tenant_and_reports_what_still_holds_it()
    {
        using var tenant = await cloud.CreateTenantAsync("delcli");
        await tenant.Member.CreateRunningVmAsync("cli-held");
        var config = Cloudctl.WriteConfig(cloud.RestUrl, CloudFixture.OperatorToken);
        try
        {
            var refused = await Assert.ThrowsAsync<CliException>(() => Cloudctl.RunAsync(config, "tenant", "delete", tenant.Id));
            Assert.Contains("still owns 1 VM(s)", refused.Message, StringComparison.Ordinal);

            var (exit, output) = await Cloudctl.RunAsync(config, "tenant", "delete", tenant.Id, "--cascade");
            Assert.Equal(0, exit);
            Assert.Contains("SUCCEEDED", output, StringComparison.Ordinal);
            Assert.Contains("Deleted 1 VM(s)", output, StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.NotFound, (await cloud.Http.GetJsonAsync($"/v1/tenants/{tenant.Id}")).Status);
        }
        finally
        {
            File.Delete(config);
        }
    }

    private static async Task<JsonElement> NextErrorEventAsync(StreamReader reader, CancellationToken cancellationToken)
    {
        var isError = false;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line == "event: error")
            {
                isError = true;
            }
            else if (isError && line.StartsWith("data: ", StringComparison.Ordinal))
            {
                return JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone();
            }
        }
        throw new InvalidOperationException("The watch ended without an error event.");
    }

    public void Dispose()
    {
        _channel.Dispose();
        _agents.Dispose();
    }
}
