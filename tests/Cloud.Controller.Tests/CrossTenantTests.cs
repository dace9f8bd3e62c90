using System.Net;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>
/// Tenant isolation on every endpoint, on both wires: another tenant's resource answers exactly
/// as one that does not exist (404 / NOT_FOUND), lists never show it, nothing about it changes;
/// readers only read; operator-only calls are refused to tenants; revoked and expired tokens are
/// not accepted.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class CrossTenantTests(CloudFixture cloud) : IDisposable
{
    private static readonly SemaphoreSlim WorldGate = new(1, 1);
    private static World? _world;
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    /// <summary>Tenant A with a running VM, a snapshot and a finished operation; tenant B that tries to reach them.</summary>
    private sealed record World(TestTenant A, TestTenant B, string VmId, string SnapshotId, string OperationId, string TokenId);

    private async Task<World> WorldAsync()
    {
        await WorldGate.WaitAsync();
        try
        {
            if (_world is null)
            {
                var a = await cloud.CreateTenantAsync("alpha");
                var b = await cloud.CreateTenantAsync("beta");
                var (_, created) = await a.Member.PostAsync("/v1/vms", $$"""{"name":"secret-vm","flavor":"{{Tenancy.Nano}}"}""");
                Assert.Equal("SUCCEEDED", (await a.Member.WaitForOperationAsync(created.Str("id"))).Str("state"));
                var vmId = created.Str("targetId");
                // The fake nodes' VMs have no disk; a snapshot of a nano VM is of its memory state only.
                var snapshot = await a.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/snapshots", """{"name":"snap-1"}""");
                Assert.Equal("SUCCEEDED", snapshot.Str("state"));
                var (_, snapshots) = await a.Member.GetJsonAsync($"/v1/vms/{vmId}/snapshots");
                var snapshotId = snapshots.GetProperty("snapshots")[0].Str("id");
                var (_, tokens) = await cloud.Http.GetJsonAsync($"/v1/tokens?tenant={a.Id}");
                _world = new World(a, b, vmId, snapshotId, created.Str("id"), tokens.GetProperty("tokens")[0].Str("id"));
            }
            return _world;
        }
        finally
        {
            WorldGate.Release();
        }
    }

    public static TheoryData<string, string, string?> ForeignResourceCalls => new()
    {
        { "GET", "/v1/vms/{vm}", null },
        { "DELETE", "/v1/vms/{vm}", null },
        { "POST", "/v1/vms/{vm}/start", null },
        { "POST", "/v1/vms/{vm}/stop", null },
        { "POST", "/v1/vms/{vm}/reboot", null },
        { "POST", "/v1/vms/{vm}/resize", """{"flavor":"m1.tiny"}""" },
        { "POST", "/v1/vms/{vm}/snapshots", """{"name":"steal"}""" },
        { "GET", "/v1/vms/{vm}/snapshots", null },
        { "GET", "/v1/snapshots/{snapshot}", null },
        { "DELETE", "/v1/snapshots/{snapshot}", null },
        { "POST", "/v1/snapshots/{snapshot}/restore", null },
        { "GET", "/v1/operations/{operation}", null },
        { "POST", "/v1/operations/{operation}/cancel", null },
        { "GET", "/v1/tenants/{tenant}", null },
        { "GET", "/v1/tokens?tenant={tenant}", null },
        { "POST", "/v1/vms", """{"name":"stolen","flavor":"t.nano","snapshot":"{snapshot}"}""" },
    };

    [Theory]
    [MemberData(nameof(ForeignResourceCalls))]
    public async Task Rest_another_tenants_resource_answers_as_if_it_did_not_exist(string method, string template, string? body)
    {
        var world = await WorldAsync();
        var before = await FootprintAsync(world);

        var (status, problem) = await world.B.Member.SendAsync(new HttpMethod(method), Expand(template, world), body is null ? null : Expand(body, world));

        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("NOT_FOUND", problem.Str("code"));
        Assert.Equal(before, await FootprintAsync(world));
    }

    [Theory]
    [MemberData(nameof(ForeignResourceCalls))]
    public async Task Rest_a_foreign_id_and_a_nonexistent_id_get_the_same_answer(string method, string template, string? body)
    {
        var world = await WorldAsync();
        var missing = new World(world.A with { Id = "no-such-tenant" }, world.B, Guid.NewGuid().ToString(), Guid.NewGuid().ToString(), Guid.NewGuid().ToString(), world.TokenId);

        var (foreignStatus, foreign) = await world.B.Member.SendAsync(new HttpMethod(method), Expand(template, world), body is null ? null : Expand(body, world));
        var (missingStatus, absent) = await world.B.Member.SendAsync(new HttpMethod(method), Expand(template, missing), body is null ? null : Expand(body, missing));

        Assert.Equal(missingStatus, foreignStatus);
        Assert.Equal(absent.Str("code"), foreign.Str("code"));
        // The message names the id asked for and nothing else.
        Assert.Equal(Normalize(absent.Str("detail"), missing), Normalize(foreign.Str("detail"), world));
    }

    public static TheoryData<string> GrpcCalls => new() { "GetVm", "DeleteVm", "StartVm", "StopVm", "RebootVm", "ResizeVm", "CreateSnapshot", "ListSnapshots", "GetSnapshot", "DeleteSnapshot", "RestoreSnapshot", "GetOperation", "CancelOperation", "GetTenant", "ListTokens", "CreateVmFromSnapshot" };

    [Theory]
    [MemberData(nameof(GrpcCalls))]
    public async Task Grpc_another_tenants_resource_answers_not_found(string call)
    {
        var world = await WorldAsync();
        var before = await FootprintAsync(world);
        var compute = new Compute.ComputeClient(_channel);
        var options = Tenancy.Bearer(world.B.MemberToken);

        var error = await Assert.ThrowsAsync<RpcException>(() => GrpcCall(compute, call, world, options));

        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Equal(before, await FootprintAsync(world));
    }

    [Fact]
    public async Task Lists_show_only_the_callers_own_resources_on_both_wires()
    {
        var world = await WorldAsync();
        foreach (var path in (string[])["/v1/vms", "/v1/snapshots", "/v1/operations", "/v1/tenants", "/v1/tokens"])
        {
            var (status, list) = await world.B.Member.GetJsonAsync(path);
            Assert.Equal(HttpStatusCode.OK, status);
            var text = list.ToString();
            Assert.DoesNotContain(world.VmId, text, StringComparison.Ordinal);
            Assert.DoesNotContain(world.SnapshotId, text, StringComparison.Ordinal);
            Assert.DoesNotContain(world.OperationId, text, StringComparison.Ordinal);
            Assert.DoesNotContain(world.A.Id, text, StringComparison.Ordinal);
        }
        var (_, own) = await world.A.Reader.GetJsonAsync("/v1/vms");
        Assert.Contains(world.VmId, own.ToString(), StringComparison.Ordinal);

        var compute = new Compute.ComputeClient(_channel);
        var options = Tenancy.Bearer(world.B.MemberToken);
        Assert.DoesNotContain((await compute.ListVmsAsync(new ListVmsRequest(), options)).Vms, v => v.Id == world.VmId);
        Assert.DoesNotContain((await compute.ListOperationsAsync(new ListOperationsRequest(), options)).Operations, o => o.Id == world.OperationId);
        Assert.DoesNotContain((await compute.ListSnapshotsAsync(new ListSnapshotsRequest(), options)).Snapshots, s => s.Id == world.SnapshotId);
        Assert.Equal([world.B.Id], (await compute.ListTenantsAsync(new ListTenantsRequest(), options)).Tenants.Select(t => t.Id));
    }

    public static TheoryData<string, string, string?> ReaderMutations => new()
    {
        { "POST", "/v1/vms", """{"name":"r","flavor":"t.nano"}""" },
        { "DELETE", "/v1/vms/{vm}", null },
        { "POST", "/v1/vms/{vm}/stop", null },
        { "POST", "/v1/vms/{vm}/reboot", null },
        { "POST", "/v1/vms/{vm}/resize", """{"flavor":"m1.tiny"}""" },
        { "POST", "/v1/vms/{vm}/snapshots", """{"name":"r"}""" },
        { "POST", "/v1/snapshots/{snapshot}/restore", null },
        { "DELETE", "/v1/snapshots/{snapshot}", null },
        { "POST", "/v1/operations/{operation}/cancel", null },
    };

    [Theory]
    [MemberData(nameof(ReaderMutations))]
    public async Task A_reader_cannot_change_anything(string method, string template, string? body)
    {
        var world = await WorldAsync();
        var before = await FootprintAsync(world);

        var (status, problem) = await world.A.Reader.SendAsync(new HttpMethod(method), Expand(template, world), body);

        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("PERMISSION_DENIED", problem.Str("code"));
        Assert.Equal(before, await FootprintAsync(world));
    }

    [Fact]
    public async Task A_reader_reads_its_tenant()
    {
        var world = await WorldAsync();
        foreach (var path in (string[])[$"/v1/vms/{world.VmId}", $"/v1/snapshots/{world.SnapshotId}", $"/v1/operations/{world.OperationId}", $"/v1/tenants/{world.A.Id}"])
        {
            var (status, _) = await world.A.Reader.GetJsonAsync(path);
            Assert.Equal(HttpStatusCode.OK, status);
        }
        var tenant = await new Compute.ComputeClient(_channel).GetTenantAsync(new GetTenantRequest { Id = world.A.Id }, Tenancy.Bearer(world.A.ReaderToken));
        Assert.Equal(1, tenant.Usage.Instances);
        Assert.Equal(1, tenant.Usage.Snapshots);
    }

    public static TheoryData<string, string, string?> OperatorOnlyCalls => new()
    {
        { "POST", "/v1/tenants", """{"id":"sneaky","displayName":"x"}""" },
        { "PUT", "/v1/tenants/{own}/quota", """{"instances":1000}""" },
        { "POST", "/v1/tokens", """{"tenant":"{own}","name":"more","role":"member"}""" },
        { "DELETE", "/v1/tokens/{token}", null },
        { "POST", "/v1/flavors", """{"name":"mine","vcpus":1,"memoryMb":"64"}""" },
        { "GET", "/v1/nodes", null },
        { "POST", "/v1/vms/{vm}/migrate", """{"node":"test-node-1"}""" },
    };

    [Theory]
    [MemberData(nameof(OperatorOnlyCalls))]
    public async Task A_tenant_member_cannot_do_what_only_operators_do(string method, string template, string? body)
    {
        var world = await WorldAsync();
        var tenants = await cloud.ScalarAsync("SELECT count(*) FROM tenants");
        var tokens = await cloud.ScalarAsync("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL");
        var quota = await cloud.ScalarAsync("SELECT max_instances FROM tenants WHERE id = @id", ("id", world.B.Id));

        var (status, problem) = await world.B.Member.SendAsync(new HttpMethod(method), Expand(template, world).Replace("{own}", world.B.Id, StringComparison.Ordinal), body?.Replace("{own}", world.B.Id, StringComparison.Ordinal));

        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("PERMISSION_DENIED", problem.Str("code"));
        Assert.Equal(tenants, await cloud.ScalarAsync("SELECT count(*) FROM tenants"));
        Assert.Equal(tokens, await cloud.ScalarAsync("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL"));
        Assert.Equal(quota, await cloud.ScalarAsync("SELECT max_instances FROM tenants WHERE id = @id", ("id", world.B.Id)));
    }

    [Fact]
    public async Task A_revoked_token_is_refused_at_once_on_both_wires()
    {
        var tenant = await cloud.CreateTenantAsync("revoked");
        using var disposeTenant = tenant;
        Assert.Equal(HttpStatusCode.OK, (await tenant.Member.GetJsonAsync("/v1/vms")).Status);
        var hash = Auth.TokenAuthenticator.Sha256Hex(tenant.MemberToken);
        var tokenId = (Guid)(await cloud.QueryAsync("SELECT id FROM api_tokens WHERE token_sha256 = @h", ("h", hash)))!;

        var (revokeStatus, revoked) = await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/tokens/{tokenId}");

        Assert.Equal(HttpStatusCode.OK, revokeStatus);
        Assert.True(revoked.TryGetProperty("revokedAt", out _));
        var (status, problem) = await tenant.Member.GetJsonAsync("/v1/vms");
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("UNAUTHENTICATED", problem.Str("code"));
        var error = await Assert.ThrowsAsync<RpcException>(() => new Compute.ComputeClient(_channel).ListVmsAsync(new ListVmsRequest(), Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        // The reader's token of the same tenant is unaffected.
        Assert.Equal(HttpStatusCode.OK, (await tenant.Reader.GetJsonAsync("/v1/vms")).Status);
    }

    [Fact]
    public async Task An_expired_token_is_refused_and_tokens_are_stored_hashed()
    {
        var tenant = await cloud.CreateTenantAsync("expired");
        using var disposeTenant = tenant;
        var hash = Auth.TokenAuthenticator.Sha256Hex(tenant.MemberToken);
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM api_tokens WHERE token_sha256 = @secret", ("secret", tenant.MemberToken)));
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM api_tokens WHERE token_sha256 = @h AND expires_at > now()", ("h", hash)));

        await cloud.ScalarAsync("WITH u AS (UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE token_sha256 = @h RETURNING 1) SELECT count(*) FROM u", ("h", hash));

        var (status, _) = await tenant.Member.GetJsonAsync("/v1/vms");
        Assert.Equal(HttpStatusCode.Unauthorized, status);
    }

    private static Task GrpcCall(Compute.ComputeClient compute, string call, World world, CallOptions options) => call switch
    {
        "GetVm" => compute.GetVmAsync(new GetVmRequest { Id = world.VmId }, options).ResponseAsync,
        "DeleteVm" => compute.DeleteVmAsync(new DeleteVmRequest { Id = world.VmId }, options).ResponseAsync,
        "StartVm" => compute.StartVmAsync(new VmActionRequest { Id = world.VmId }, options).ResponseAsync,
        "StopVm" => compute.StopVmAsync(new StopVmRequest { Id = world.VmId }, options).ResponseAsync,
        "RebootVm" => compute.RebootVmAsync(new VmActionRequest { Id = world.VmId }, options).ResponseAsync,
        "ResizeVm" => compute.ResizeVmAsync(new ResizeVmRequest { Id = world.VmId, Flavor = "m1.tiny" }, options).ResponseAsync,
        "CreateSnapshot" => compute.CreateSnapshotAsync(new CreateSnapshotRequest { VmId = world.VmId, Name = "steal" }, options).ResponseAsync,
        "ListSnapshots" => compute.ListSnapshotsAsync(new ListSnapshotsRequest { VmId = world.VmId }, options).ResponseAsync,
        "GetSnapshot" => compute.GetSnapshotAsync(new GetSnapshotRequest { Id = world.SnapshotId }, options).ResponseAsync,
        "DeleteSnapshot" => compute.DeleteSnapshotAsync(new DeleteSnapshotRequest { Id = world.SnapshotId }, options).ResponseAsync,
        "RestoreSnapshot" => compute.RestoreSnapshotAsync(new RestoreSnapshotRequest { Id = world.SnapshotId }, options).ResponseAsync,
        "GetOperation" => compute.GetOperationAsync(new GetOperationRequest { Id = world.OperationId }, options).ResponseAsync,
        "CancelOperation" => compute.CancelOperationAsync(new CancelOperationRequest { Id = world.OperationId }, options).ResponseAsync,
        "GetTenant" => compute.GetTenantAsync(new GetTenantRequest { Id = world.A.Id }, options).ResponseAsync,
        "ListTokens" => compute.ListTokensAsync(new ListTokensRequest { Tenant = world.A.Id }, options).ResponseAsync,
        "CreateVmFromSnapshot" => compute.CreateVmAsync(new CreateVmRequest { Name = "stolen", Flavor = "t.nano", Snapshot = world.SnapshotId }, options).ResponseAsync,
        _ => throw new ArgumentOutOfRangeException(nameof(call), call, null),
    };

    private static string Expand(string template, World world) => template
        .Replace("{vm}", world.VmId, StringComparison.Ordinal)
        .Replace("{snapshot}", world.SnapshotId, StringComparison.Ordinal)
        .Replace("{operation}", world.OperationId, StringComparison.Ordinal)
        .Replace("{tenant}", world.A.Id, StringComparison.Ordinal)
        .Replace("{token}", world.TokenId, StringComparison.Ordinal);

    private static string Normalize(string detail, World world)
    {
        foreach (var id in (string[])[world.VmId, world.SnapshotId, world.OperationId, world.A.Id])
        {
            detail = detail.Replace(id, "<id>", StringComparison.Ordinal);
        }
        return detail;
    }

    /// <summary>Everything of tenant A a foreign call could have changed.</summary>
    private async Task<string> FootprintAsync(World world)
        => string.Join('|',
            await cloud.QueryAsync("SELECT state || updated_at::text FROM vms WHERE id = @id", ("id", Guid.Parse(world.VmId))),
            await cloud.QueryAsync("SELECT state FROM snapshots WHERE id = @id", ("id", Guid.Parse(world.SnapshotId))),
            await cloud.ScalarAsync("SELECT count(*) FROM operations"),
            await cloud.ScalarAsync("SELECT count(*) FROM snapshots"),
            await cloud.QueryAsync("SELECT used_instances::text || used_snapshots::text FROM tenants WHERE id = @id", ("id", world.A.Id)));

    public void Dispose() => _channel.Dispose();
}
