namespace Cloud.Controller.Tests.Support;

/// <summary>What PostgreSQL holds for a tenant, read or written behind the API's back.</summary>
internal static class TenantRows
{
    /// <summary>The tenant's charged usage: instances, vCPUs, memory.</summary>
    public static async Task<(long Instances, long Vcpus, long MemoryMb)> UsageAsync(this CloudFixture cloud, string project)
        => (await cloud.ScalarAsync("SELECT used_instances FROM tenants WHERE id = @p", ("p", project)),
            await cloud.ScalarAsync("SELECT used_vcpus FROM tenants WHERE id = @p", ("p", project)),
            await cloud.ScalarAsync("SELECT used_memory_mb FROM tenants WHERE id = @p", ("p", project)));

    /// <summary>The tenant's VM rows, operations and usage, to show that a refused request wrote nothing.</summary>
    public static async Task<(long Vms, long Operations, long Used)> CountsAsync(this CloudFixture cloud, string project)
        => (await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE project_id = @p", ("p", project)),
            await cloud.ScalarAsync("SELECT count(*) FROM operations WHERE project_id = @p", ("p", project)),
            await cloud.ScalarAsync("SELECT used_instances + used_vcpus + used_memory_mb + used_disk_gb FROM tenants WHERE id = @p", ("p", project)));

    /// <summary>A t.nano VM row as a create request leaves it: PENDING, on no node.</summary>
    public static async Task InsertPendingVmAsync(this CloudFixture cloud, string project, Guid vmId, string name = "inserted")
        => await cloud.ScalarAsync(
            """
            WITH v AS (INSERT INTO vms (id, project_id, name, flavor_name, state, vcpus, memory_mb, disk_gb, labels, created_at, updated_at)
                       VALUES (@id, @p, @n, 't.nano', 'PENDING', 1, 64, 0, '{}', now(), now()) RETURNING 1)
            SELECT count(*) FROM v
            """, ("id", vmId), ("p", project), ("n", name));
}
