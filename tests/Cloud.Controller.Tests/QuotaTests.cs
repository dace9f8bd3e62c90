using System.Net;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>Quotas per tenant: each resource refused over its quota on both wires, usage following
/// create, resize and delete, and no race able to exceed a quota.</summary>
[Collection(CloudCollection.Name)]
public sealed class QuotaTests(CloudFixture cloud)
{
    [Fact]
    public async Task Fifty_concurrent_creates_against_a_quota_of_ten_end_with_exactly_ten_vms()
    {
        using var tenant = await cloud.CreateTenantAsync("race", """{"instances":10,"vcpus":1000,"memoryMb":"1000000","diskGb":"1000","snapshots":0}""");

        var answers = await Task.WhenAll(Enumerable.Range(0, 50).Select(i =>
            tenant.Member.PostAsync("/v1/vms", $$"""{"name":"race-{{i}}","flavor":"{{Tenancy.Nano}}"}""")));

        // A request may already be refused (429) once the quota is visibly full; every accepted
        // one ends, and only those that won a place within the quota succeed.
        Assert.All(answers, a => Assert.True(a.Status is HttpStatusCode.Accepted or HttpStatusCode.TooManyRequests, a.Body.ToString()));
        var finished = await Task.WhenAll(answers.Where(a => a.Status == HttpStatusCode.Accepted)
            .Select(a => tenant.Member.WaitForOperationAsync(a.Body.Str("id"))));
        Assert.True(finished.Count(o => o.Str("state") == "SUCCEEDED") == 10,
            string.Join('\n', finished.Where(o => o.Str("state") != "SUCCEEDED").Select(o => o.Str("errorMessage")).Distinct()));
        Assert.All(finished.Where(o => o.Str("state") != "SUCCEEDED"), o => Assert.Equal("RESOURCE_EXHAUSTED", o.Str("errorCode")));
        Assert.All(answers.Where(a => a.Status == HttpStatusCode.TooManyRequests), a => Assert.Equal("RESOURCE_EXHAUSTED", a.Body.Str("code")));

        Assert.True(10 == await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p AND state <> 'DELETED'", ("p", tenant.Id)),
            (string?)await cloud.QueryAsync("SELECT string_agg(state || ' ' || coalesce(error, '-'), E'\n') FROM vms WHERE project_id = @p AND state <> 'DELETED'", ("p", tenant.Id)));
        Assert.Equal(10, await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p AND state = 'RUNNING' AND node_id IS NOT NULL", ("p", tenant.Id)));
        Assert.Equal(10, await cloud.ScalarAsync("SELECT count(*) FROM consumers WHERE project_id = @p", ("p", tenant.Id)));
        Assert.Equal(10, await cloud.ScalarAsync("SELECT used_instances FROM tenants WHERE id = @p", ("p", tenant.Id)));
        Assert.Equal(10, await cloud.ScalarAsync("SELECT used_vcpus FROM tenants WHERE id = @p", ("p", tenant.Id)));
        var (_, list) = await tenant.Reader.GetJsonAsync("/v1/vms");
        Assert.Equal(10, list.GetProperty("vms").GetArrayLength());
    }

    public static TheoryData<string, string, string> OverQuota => new()
    {
        { """{"instances":0,"vcpus":10,"memoryMb":"10000","diskGb":"100","snapshots":1}""", Tenancy.Nano, "instances" },
        { """{"instances":5,"vcpus":1,"memoryMb":"10000","diskGb":"100","snapshots":1}""", "m1.medium", "vcpus" },
        { """{"instances":5,"vcpus":10,"memoryMb":"256","diskGb":"100","snapshots":1}""", "m1.tiny", "memory_mb" },
        { """{"instances":5,"vcpus":10,"memoryMb":"10000","diskGb":"0","snapshots":1}""", "m1.tiny", "disk_gb" },
    };

    [Theory]
    [MemberData(nameof(OverQuota))]
    public async Task A_create_over_a_quota_is_refused_on_both_wires_and_writes_nothing(string quota, string flavor, string resource)
    {
        using var tenant = await cloud.CreateTenantAsync("over", quota);
        var before = await cloud.CountsAsync(tenant.Id);

        var (status, problem) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"too-much","flavor":"{{flavor}}"}""");
        var error = await Assert.ThrowsAsync<RpcException>(() => Compute().CreateVmAsync(
            new CreateVmRequest { Name = "too-much", Flavor = flavor }, Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);

        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        Assert.Equal("RESOURCE_EXHAUSTED", problem.Str("code"));
        Assert.Contains(resource, problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains(resource, error.Status.Detail, StringComparison.Ordinal);
        // One error shape: the same code and details on both wires.
        Assert.Equal("QUOTA_EXCEEDED", problem.GetProperty("details").Str("reason"));
        // gRPC carries it as google.rpc.Status with an ErrorInfo, as rich-error clients read it.
        var rich = error.GetRpcStatus();
        Assert.NotNull(rich);
        Assert.Equal((int)StatusCode.ResourceExhausted, rich.Code);
        Assert.Equal(error.Status.Detail, rich.Message);
        var info = rich.GetDetail<Google.Rpc.ErrorInfo>();
        Assert.Equal("QUOTA_EXCEEDED", info?.Reason);
        Assert.Equal("cloud", info?.Domain);
        Assert.Equal(before, await cloud.CountsAsync(tenant.Id));
    }

    [Fact]
    public async Task The_snapshots_quota_is_enforced_and_given_back_on_delete()
    {
        using var tenant = await cloud.CreateTenantAsync("snapq", """{"instances":2,"vcpus":2,"memoryMb":"1024","diskGb":"10","snapshots":1}""");
        var vmId = await tenant.Member.CreateRunningVmAsync("snapper");

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/snapshots", """{"name":"one"}""")).Str("state"));
        var (status, problem) = await tenant.Member.PostAsync($"/v1/vms/{vmId}/snapshots", """{"name":"two"}""");
        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        Assert.Contains("snapshots 1 used + 1 asked > 1 allowed", problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM snapshots WHERE vm_id = @v", ("v", Guid.Parse(vmId))));

        var (_, snapshots) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/snapshots");
        var snapshotId = snapshots.GetProperty("snapshots")[0].Str("id");
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/snapshots/{snapshotId}")).Str("state"));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT used_snapshots FROM tenants WHERE id = @p", ("p", tenant.Id)));
        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/snapshots", """{"name":"two"}""")).Str("state"));
    }

    [Fact]
    public async Task Usage_follows_create_resize_and_delete()
    {
        using var tenant = await cloud.CreateTenantAsync("usage", """{"instances":3,"vcpus":2,"memoryMb":"5000","diskGb":"100","snapshots":0}""");
        var vmId = await tenant.Member.CreateRunningVmAsync("grows");
        Assert.Equal((1, 1, 64L), await cloud.UsageAsync(tenant.Id));

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Post, $"/v1/vms/{vmId}/resize", """{"flavor":"m1.medium"}""")).Str("state"));
        Assert.Equal((1, 2, 4096L), await cloud.UsageAsync(tenant.Id));
        Assert.Equal(4096, await cloud.ScalarAsync("SELECT used FROM allocations WHERE consumer_id = @v AND resource_class = 'MEMORY_MB'", ("v", Guid.Parse(vmId))));

        var (status, problem) = await tenant.Member.PostAsync($"/v1/vms/{vmId}/resize", """{"flavor":"m1.large"}""");
        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        Assert.Contains("vcpus", problem.Str("detail"), StringComparison.Ordinal);

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        Assert.Equal((0, 0, 0L), await cloud.UsageAsync(tenant.Id));
    }

    [Fact]
    public async Task Lowering_a_quota_below_the_usage_takes_nothing_away_but_stops_growth()
    {
        using var tenant = await cloud.CreateTenantAsync("lower");
        await tenant.Member.CreateRunningVmAsync("keeper");

        var (status, updated) = await cloud.Http.SendAsync(HttpMethod.Put, $"/v1/tenants/{tenant.Id}/quota", """{"instances":0,"vcpus":0,"memoryMb":"0","diskGb":"0","snapshots":0}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(1, updated.GetProperty("usage").GetProperty("instances").GetInt32());
        Assert.Equal(HttpStatusCode.TooManyRequests, (await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"more","flavor":"{{Tenancy.Nano}}"}""")).Status);
        var (_, vms) = await tenant.Member.GetJsonAsync("/v1/vms");
        Assert.Equal("RUNNING", vms.GetProperty("vms")[0].Str("state"));
    }

    private Compute.ComputeClient Compute() => new(cloud.NewGrpcChannel());
}

/// <summary>The charge itself, without the API in front: racing transactions against one tenant row.</summary>
[Collection(CloudCollection.Name)]
public sealed class QuotaLedgerTests(CloudFixture cloud)
{
    [Fact]
    public async Task Fifty_racing_charges_against_a_quota_of_ten_commit_exactly_ten()
    {
        var tenant = $"ledger-{Guid.NewGuid():N}"[..20];
        await cloud.ScalarAsync(
            """
            WITH t AS (INSERT INTO tenants (id, display_name, created_at, max_instances, max_vcpus, max_memory_mb, max_disk_gb, max_snapshots,
                                            max_images, max_image_gb, used_instances, used_vcpus, used_memory_mb, used_disk_gb, used_snapshots,
                                            used_images, used_image_gb)
                       VALUES (@id, 'ledger', now(), 10, 1000, 100000, 1000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) RETURNING 1)
            SELECT count(*) FROM t
            """, ("id", tenant));
        await using var dataSource = Npgsql.NpgsqlDataSource.Create(cloud.ConnectionString);
        using var start = new ManualResetEventSlim();

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => Task.Run(async () =>
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            start.Wait();
            try
            {
                await Quotas.QuotaLedger.ChargeAsync(transaction, tenant, Quotas.QuotaUsage.ForVm(1, 64, 0), CancellationToken.None);
                await transaction.CommitAsync();
                return true;
            }
            catch (Quotas.QuotaExceededException)
            {
                await transaction.RollbackAsync();
                return false;
            }
        })).Append(Task.Run(() => { start.Set(); return true; })));

        Assert.Equal(10 + 1, outcomes.Count(o => o));
        Assert.Equal(10, await cloud.ScalarAsync("SELECT used_instances FROM tenants WHERE id = @id", ("id", tenant)));
        Assert.Equal(640, await cloud.ScalarAsync("SELECT used_memory_mb FROM tenants WHERE id = @id", ("id", tenant)));
    }
}
