using System.Net;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>Malformed and out-of-range input to the tenancy endpoints and the VM verbs: a clear
/// error with a stable code, and no row of PostgreSQL changes.</summary>
[Collection(CloudCollection.Name)]
public sealed class TenantBadInputTests(CloudFixture cloud)
{
    private static readonly SemaphoreSlim VmGate = new(1, 1);
    private static string? _vmId;

    public static TheoryData<string, string, string, HttpStatusCode, string> Cases => new()
    {
        { "POST", "/v1/tenants", """{"id":"Bad_Id"}""", HttpStatusCode.BadRequest, "id 'Bad_Id' is invalid" },
        { "POST", "/v1/tenants", """{"id":"admin"}""", HttpStatusCode.BadRequest, "reserved" },
        { "POST", "/v1/tenants", "{\"id\":\"" + new string('t', 64) + "\"}", HttpStatusCode.BadRequest, "at most 63" },
        { "POST", "/v1/tenants", """{"id":"neg","quota":{"instances":-1}}""", HttpStatusCode.BadRequest, "quota.instances must be between" },
        { "POST", "/v1/tenants", """{"id":"huge","quota":{"memoryMb":"9999999999999999"}}""", HttpStatusCode.BadRequest, "quota.memory_mb must be between" },
        { "POST", "/v1/tenants", """{"id":"ctl","displayName":"a\u0001b"}""", HttpStatusCode.BadRequest, "control characters" },
        { "POST", "/v1/tenants", """{"id":"x","owner":"me"}""", HttpStatusCode.BadRequest, "owner" },
        { "PUT", "/v1/tenants/{tenant}/quota", """{"vcpus":-5}""", HttpStatusCode.BadRequest, "quota.vcpus must be between" },
        { "PUT", "/v1/tenants/{tenant}/quota", """{"images":-1}""", HttpStatusCode.BadRequest, "quota.images must be between" },
        { "POST", "/v1/tenants", """{"id":"bigimg","quota":{"imageGb":"9999999999999999"}}""", HttpStatusCode.BadRequest, "quota.image_gb must be between" },
        { "PUT", "/v1/tenants/no-such-tenant/quota", """{"vcpus":5}""", HttpStatusCode.NotFound, "Tenant 'no-such-tenant'" },
        { "POST", "/v1/tokens", """{"tenant":"{tenant}","name":"t","role":"root"}""", HttpStatusCode.BadRequest, "role must be" },
        { "POST", "/v1/tokens", """{"name":"t","role":"member"}""", HttpStatusCode.BadRequest, "tenant is required" },
        { "POST", "/v1/tokens", """{"tenant":"{tenant}","name":"t","role":"operator"}""", HttpStatusCode.BadRequest, "belongs to no tenant" },
        { "POST", "/v1/tokens", """{"tenant":"{tenant}","name":"t","role":"member","ttlDays":-1}""", HttpStatusCode.BadRequest, "ttl_days must be between" },
        { "POST", "/v1/tokens", """{"tenant":"{tenant}","name":"t","role":"member","ttlDays":99999}""", HttpStatusCode.BadRequest, "ttl_days must be between" },
        { "POST", "/v1/tokens", """{"tenant":"no-such-tenant","name":"t","role":"member"}""", HttpStatusCode.NotFound, "Tenant 'no-such-tenant'" },
        { "DELETE", "/v1/tokens/not-a-token", "", HttpStatusCode.NotFound, "Token 'not-a-token'" },
        { "POST", "/v1/vms/{vm}/resize", "{}", HttpStatusCode.BadRequest, "flavor is required" },
        { "POST", "/v1/vms/{vm}/resize", """{"flavor":"no such"}""", HttpStatusCode.BadRequest, "flavor 'no such' is invalid" },
        { "POST", "/v1/vms/{vm}/resize", """{"flavor":"no-such-flavor"}""", HttpStatusCode.NotFound, "Flavor 'no-such-flavor'" },
        { "POST", "/v1/vms/{vm}/resize", """{"flavor":"t.nano"}""", HttpStatusCode.BadRequest, "already has flavor" },
        { "POST", "/v1/vms/{vm}/snapshots", """{"name":"Not A Name"}""", HttpStatusCode.BadRequest, "name 'Not A Name' is invalid" },
        { "POST", "/v1/vms/{vm}/snapshots", "{}", HttpStatusCode.BadRequest, "name is required" },
        { "POST", "/v1/vms/{vm}/stop", """{"id":"00000000-0000-0000-0000-000000000009"}""", HttpStatusCode.BadRequest, "differs from the one in the path" },
        { "POST", "/v1/vms/{vm}/stop", """{"force":"yes"}""", HttpStatusCode.BadRequest, "Malformed JSON" },
        { "POST", "/v1/vms/{vm}/reboot", "[]", HttpStatusCode.BadRequest, "Malformed JSON" },
        { "POST", "/v1/vms/not-a-vm/start", "", HttpStatusCode.NotFound, "VM 'not-a-vm'" },
        { "POST", "/v1/vms/{vm}/migrate", """{"node":"Not_A_Node"}""", HttpStatusCode.BadRequest, "node 'Not_A_Node' is invalid" },
        { "POST", "/v1/vms/{vm}/migrate", """{"node":"no-such-node"}""", HttpStatusCode.NotFound, "Node 'no-such-node'" },
        { "POST", "/v1/snapshots/not-a-snapshot/restore", "", HttpStatusCode.NotFound, "Snapshot 'not-a-snapshot'" },
        { "POST", "/v1/operations/not-an-operation/cancel", "", HttpStatusCode.NotFound, "Operation 'not-an-operation'" },
        { "GET", "/v1/vms?label_selector=novalue", "", HttpStatusCode.BadRequest, "label_selector 'novalue' is invalid" },
        { "GET", "/v1/vms?label_selector=bad%20key%3Dv", "", HttpStatusCode.BadRequest, "label key 'bad key' is invalid" },
        { "GET", "/v1/vms?page_size=501", "", HttpStatusCode.BadRequest, "page_size must be between" },
        { "GET", "/v1/vms?page_token=zzz", "", HttpStatusCode.BadRequest, "page_token is invalid" },
        { "GET", "/v1/operations?page_size=-1", "", HttpStatusCode.BadRequest, "page_size must be between" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Bad_input_is_refused_with_a_clear_error_and_changes_nothing(string method, string template, string body, HttpStatusCode expected, string detail)
    {
        var (vmId, tenant) = await FixturesAsync();
        var path = template.Replace("{vm}", vmId, StringComparison.Ordinal).Replace("{tenant}", tenant, StringComparison.Ordinal);
        var before = await SnapshotOfDatabaseAsync();

        var (status, problem) = await cloud.Http.SendAsync(new HttpMethod(method), path, body.Replace("{tenant}", tenant, StringComparison.Ordinal));

        Assert.Equal(expected, status);
        Assert.Contains(detail, problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(before, await SnapshotOfDatabaseAsync());
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("a-key-that-is-far-too-long-a-key-that-is-far-too-long-a-key-that-is-far-too-long-a-key-that-is-far-too-long-a-key-that-is-far-too-long")]
    public async Task A_malformed_idempotency_key_is_refused(string key)
    {
        var before = await SnapshotOfDatabaseAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/vms")
        {
            Content = new StringContent($$"""{"name":"keyed","flavor":"{{Tenancy.Nano}}"}""", System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        using var response = await cloud.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("Idempotency-Key must be", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(before, await SnapshotOfDatabaseAsync());
    }

    public static TheoryData<string> GrpcBadRequests => new()
    {
        "CreateTenant:bad id", "CreateTenant:negative quota", "SetQuota:negative", "CreateToken:bad role", "CreateToken:ttl",
        "ResizeVm:no flavor", "CreateSnapshot:bad name", "ListVms:bad selector", "ListVms:page size", "MigrateVm:bad node", "CreateVm:image and snapshot",
    };

    [Theory]
    [MemberData(nameof(GrpcBadRequests))]
    public async Task Grpc_bad_input_is_invalid_argument_and_changes_nothing(string call)
    {
        var (vmId, tenant) = await FixturesAsync();
        using var channel = cloud.NewGrpcChannel();
        var compute = new Cloud.Contracts.Compute.V1.Compute.ComputeClient(channel);
        var options = Tenancy.Bearer(CloudFixture.OperatorToken);
        var before = await SnapshotOfDatabaseAsync();

        var error = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => call switch
        {
            "CreateTenant:bad id" => compute.CreateTenantAsync(new() { Id = "Bad_Id" }, options).ResponseAsync,
            "CreateTenant:negative quota" => compute.CreateTenantAsync(new() { Id = "neg-q", Quota = new() { Snapshots = -1 } }, options).ResponseAsync,
            "SetQuota:negative" => compute.SetQuotaAsync(new() { Tenant = tenant, Quota = new() { DiskGb = -1 } }, options).ResponseAsync,
            "CreateToken:bad role" => compute.CreateTokenAsync(new() { Tenant = tenant, Name = "t", Role = "admin" }, options).ResponseAsync,
            "CreateToken:ttl" => compute.CreateTokenAsync(new() { Tenant = tenant, Name = "t", Role = "reader", TtlDays = 4000 }, options).ResponseAsync,
            "ResizeVm:no flavor" => compute.ResizeVmAsync(new() { Id = vmId }, options).ResponseAsync,
            "CreateSnapshot:bad name" => compute.CreateSnapshotAsync(new() { VmId = vmId, Name = "-bad-" }, options).ResponseAsync,
            "ListVms:bad selector" => compute.ListVmsAsync(new() { LabelSelector = "a=b,a=c" }, options).ResponseAsync,
            "ListVms:page size" => compute.ListVmsAsync(new() { PageSize = 100_000 }, options).ResponseAsync,
            "MigrateVm:bad node" => compute.MigrateVmAsync(new() { Id = vmId, Node = "Not_A_Node" }, options).ResponseAsync,
            "CreateVm:image and snapshot" => compute.CreateVmAsync(new() { Name = "x", Flavor = Tenancy.Nano, Image = "i", Snapshot = vmId }, options).ResponseAsync,
            _ => throw new ArgumentOutOfRangeException(nameof(call), call, null),
        });

        Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, error.StatusCode);
        Assert.False(string.IsNullOrWhiteSpace(error.Status.Detail));
        Assert.Equal(before, await SnapshotOfDatabaseAsync());
    }

    private async Task<(string VmId, string Tenant)> FixturesAsync()
    {
        await VmGate.WaitAsync();
        try
        {
            if (_vmId is null)
            {
                var tenant = await cloud.CreateTenantAsync("badin");
                _vmId = await tenant.Member.CreateRunningVmAsync("target") + "|" + tenant.Id;
            }
            var parts = _vmId.Split('|');
            return (parts[0], parts[1]);
        }
        finally
        {
            VmGate.Release();
        }
    }

    /// <summary>Counts and sums over every table a request could write.</summary>
    private async Task<string> SnapshotOfDatabaseAsync()
        => (string)(await cloud.QueryAsync(
            """
            SELECT concat_ws('|',
              (SELECT count(*) FROM tenants), (SELECT sum(max_instances + max_vcpus + max_memory_mb + max_disk_gb + max_snapshots) FROM tenants),
              (SELECT sum(used_instances + used_vcpus + used_memory_mb + used_disk_gb + used_snapshots) FROM tenants),
              (SELECT count(*) FROM api_tokens), (SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL),
              (SELECT count(*) FROM vms), (SELECT string_agg(state, ',' ORDER BY id) FROM vms),
              (SELECT count(*) FROM operations), (SELECT count(*) FROM snapshots), (SELECT count(*) FROM allocations),
              (SELECT count(*) FROM flavors))
            """))!;
}
