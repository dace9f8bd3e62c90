using System.Net;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>Operations: idempotent retries of every verb on both wires, one operation at a time
/// per VM, cancel, and an operation taken over after its replica stopped saying it resumed.</summary>
[Collection(CloudCollection.Name)]
public sealed class OperationTests(CloudFixture cloud) : IDisposable
{
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    /// <summary>A verb, and another request (another body, or another verb) sent with the same key.</summary>
    public static TheoryData<string, string?, string, string> Verbs => new()
    {
        { "/v1/vms/{vm}/stop", null, "/v1/vms/{vm}/stop", """{"force":true}""" },
        { "/v1/vms/{vm}/reboot", null, "/v1/vms/{vm}/start", "" },
        { "/v1/vms/{vm}/resize", """{"flavor":"m1.tiny"}""", "/v1/vms/{vm}/resize", """{"flavor":"m1.small"}""" },
        { "/v1/vms/{vm}/snapshots", """{"name":"same"}""", "/v1/vms/{vm}/snapshots", """{"name":"other"}""" },
    };

    [Theory]
    [MemberData(nameof(Verbs))]
    public async Task A_retried_verb_with_the_same_key_returns_the_first_operation_and_a_different_body_is_a_conflict(string template, string? body, string otherTemplate, string otherBody)
    {
        using var tenant = await cloud.CreateTenantAsync("idem");
        var vmId = await tenant.Member.CreateRunningVmAsync("retried");
        var path = template.Replace("{vm}", vmId, StringComparison.Ordinal);
        var key = "key-" + Guid.NewGuid().ToString("N");

        var (first, a) = await tenant.Member.PostAsync(path, body ?? "", key);
        var (second, b) = await tenant.Member.PostAsync(path, body ?? "", key);
        Assert.Equal(HttpStatusCode.Accepted, first);
        Assert.Equal(HttpStatusCode.Accepted, second);
        Assert.Equal(a.Str("id"), b.Str("id"));
        var operations = await cloud.ScalarAsync("SELECT count(*) FROM operations WHERE project_id = @p", ("p", tenant.Id));

        var (conflict, problem) = await tenant.Member.PostAsync(otherTemplate.Replace("{vm}", vmId, StringComparison.Ordinal), otherBody, key);
        Assert.Equal(HttpStatusCode.Conflict, conflict);
        Assert.Equal("FAILED_PRECONDITION", problem.Str("code"));
        Assert.Contains("Idempotency-Key", problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(operations, await cloud.ScalarAsync("SELECT count(*) FROM operations WHERE project_id = @p", ("p", tenant.Id)));
        Assert.Equal("SUCCEEDED", (await tenant.Member.WaitForOperationAsync(a.Str("id"))).Str("state"));
    }

    [Fact]
    public async Task Grpc_retries_with_the_same_key_return_the_same_operation()
    {
        using var tenant = await cloud.CreateTenantAsync("gidem");
        var compute = new Compute.ComputeClient(_channel);
        var options = Tenancy.Bearer(tenant.MemberToken);
        var create = new CreateVmRequest { Name = "grpc-retried", Flavor = Tenancy.Nano, IdempotencyKey = "create-1" };

        var first = await compute.CreateVmAsync(create, options);
        var second = await compute.CreateVmAsync(create, options);
        Assert.Equal(first.Id, second.Id);
        Assert.Equal("SUCCEEDED", (await tenant.Member.WaitForOperationAsync(first.Id)).Str("state"));

        var stop = new StopVmRequest { Id = first.TargetId, IdempotencyKey = "stop-1" };
        Assert.Equal((await compute.StopVmAsync(stop, options)).Id, (await compute.StopVmAsync(stop, options)).Id);
        var reused = await Assert.ThrowsAsync<RpcException>(() => compute.RebootVmAsync(new VmActionRequest { Id = first.TargetId, IdempotencyKey = "stop-1" }, options).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, reused.StatusCode);
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p", ("p", tenant.Id)));
    }

    [Fact]
    public async Task A_vm_with_an_operation_under_way_refuses_another_until_it_is_cancelled()
    {
        using var tenant = await cloud.CreateTenantAsync("busy");
        var vmId = await tenant.Member.CreateRunningVmAsync("busy-vm");
        // An operation another replica holds a live lease on and has not started yet.
        var pending = await InsertHeldOperationAsync(tenant.Id, "vm.reboot", vmId);

        var (status, problem) = await tenant.Member.PostAsync($"/v1/vms/{vmId}/stop", "");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Contains(pending.ToString(), problem.Str("detail"), StringComparison.Ordinal);

        var (cancelStatus, cancelled) = await tenant.Member.PostAsync($"/v1/operations/{pending}/cancel", "");
        Assert.Equal(HttpStatusCode.OK, cancelStatus);
        Assert.Equal("FAILED", cancelled.Str("state"));
        Assert.Equal("CANCELLED", cancelled.Str("errorCode"));

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/stop")).Str("state"));
        var (_, vm) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal("STOPPED", vm.Str("state"));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/start")).Str("state"));
    }

    [Fact]
    public async Task Cancelling_a_pending_create_removes_its_vm_and_a_finished_operation_cannot_be_cancelled()
    {
        using var tenant = await cloud.CreateTenantAsync("cancel");
        var vmId = Guid.NewGuid();
        await cloud.InsertPendingVmAsync(tenant.Id, vmId);
        var pending = await InsertHeldOperationAsync(tenant.Id, "vm.create", vmId.ToString());

        var cancelled = await new Compute.ComputeClient(_channel).CancelOperationAsync(new CancelOperationRequest { Id = pending.ToString() }, Tenancy.Bearer(tenant.MemberToken));

        Assert.Equal("CANCELLED", cancelled.ErrorCode);
        Assert.Equal(HttpStatusCode.NotFound, (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Status);
        var (again, problem) = await tenant.Member.PostAsync($"/v1/operations/{pending}/cancel", "");
        Assert.Equal(HttpStatusCode.BadRequest, again);
        Assert.Equal("FAILED_PRECONDITION", problem.Str("code"));
    }

    [Fact]
    public async Task An_operation_abandoned_by_a_stopped_replica_is_resumed_and_says_so()
    {
        using var tenant = await cloud.CreateTenantAsync("resume");
        var vmId = Guid.NewGuid();
        await cloud.InsertPendingVmAsync(tenant.Id, vmId);
        // What a controller killed mid-create leaves: RUNNING, its owner gone, the lease run out.
        var operationId = Guid.CreateVersion7();
        await cloud.ScalarAsync(
            """
            WITH o AS (INSERT INTO operations (id, project_id, kind, target_id, state, progress, created_at, updated_at, owner, lease_expires_at)
                       VALUES (@id, @p, 'vm.create', @vm, 'RUNNING', 10, now(), now(), 'crashed-replica', now() - interval '1 minute') RETURNING 1)
            SELECT count(*) FROM o
            """, ("id", operationId), ("p", tenant.Id), ("vm", vmId.ToString()));

        var done = await tenant.Member.WaitForOperationAsync(operationId.ToString());

        Assert.Equal("SUCCEEDED", done.Str("state"));
        Assert.Equal("RESUMED", done.Str("recovery"));
        var (_, vm) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal("RUNNING", vm.Str("state"));
        Assert.Equal(1, await cloud.ScalarAsync("SELECT used_instances FROM tenants WHERE id = @p", ("p", tenant.Id)));
    }

    [Fact]
    public async Task Operations_page_and_show_progress()
    {
        using var tenant = await cloud.CreateTenantAsync("pages");
        for (var i = 0; i < 3; i++)
        {
            await tenant.Member.CreateRunningVmAsync($"paged-{i}");
        }
        var (_, first) = await tenant.Reader.GetJsonAsync("/v1/operations?page_size=2");
        Assert.Equal(2, first.GetProperty("operations").GetArrayLength());
        var (_, second) = await tenant.Reader.GetJsonAsync($"/v1/operations?page_size=2&page_token={first.Str("nextPageToken")}");
        Assert.Equal(1, second.GetProperty("operations").GetArrayLength());
        Assert.Equal("", second.Str("nextPageToken"));
        Assert.All(first.GetProperty("operations").EnumerateArray(), o => Assert.Equal(100, o.GetProperty("progress").GetInt32()));
    }

    private async Task<Guid> InsertHeldOperationAsync(string project, string kind, string target)
    {
        var id = Guid.CreateVersion7();
        await cloud.ScalarAsync(
            """
            WITH o AS (INSERT INTO operations (id, project_id, kind, target_id, state, progress, created_at, updated_at, owner, lease_expires_at)
                       VALUES (@id, @p, @kind, @target, 'PENDING', 0, now(), now(), 'another-replica', now() + interval '1 hour') RETURNING 1)
            SELECT count(*) FROM o
            """, ("id", id), ("p", project), ("kind", kind), ("target", target));
        return id;
    }

    public void Dispose() => _channel.Dispose();
}
