using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Cloud.Controller.Quotas;

/// <summary>What a VM or a change of one counts against its tenant's quota.</summary>
internal readonly record struct QuotaUsage(int Instances, int Vcpus, long MemoryMb, long DiskGb, int Snapshots, int Images = 0, long ImageGb = 0)
{
    private const long GiB = 1024L * 1024 * 1024;

    public static QuotaUsage ForVm(int vcpus, long memoryMb, long diskGb) => new(1, vcpus, memoryMb, diskGb, 0);

    public static QuotaUsage OneSnapshot => new(0, 0, 0, 0, 1);

    public static QuotaUsage OneImage => new(0, 0, 0, 0, 0, Images: 1);

    /// <summary>An image file's share of the image_gb quota: its size rounded up to a whole GiB.</summary>
    public static QuotaUsage ImageFile(long bytes) => new(0, 0, 0, 0, 0, ImageGb: (bytes + GiB - 1) / GiB);
}

/// <summary>A charge the tenant's quota does not allow.</summary>
internal sealed class QuotaExceededException(string message) : Exception(message)
{
    public ApiException ToApi() => new(StatusCode.ResourceExhausted, Message, new Dictionary<string, object?> { ["reason"] = "QUOTA_EXCEEDED" });
}

/// <summary>
/// Charges and releases the usage on the tenant's row, inside the caller's transaction: the
/// transaction of the capacity claim for a VM (so a VM holds capacity exactly when it counts
/// against its quota), or the one that records a snapshot. The charge is one conditional
/// UPDATE; PostgreSQL's row lock makes concurrent charges of one tenant queue up and re-check
/// the condition on the row as the previous one left it, so no interleaving can exceed a quota.
/// A project without a tenant row (the operators' own) has no quota.
/// </summary>
internal static class QuotaLedger
{
    /// <exception cref="QuotaExceededException">The charge would exceed a quota; the caller's transaction must not commit.</exception>
    public static async Task ChargeAsync(NpgsqlTransaction transaction, string projectId, QuotaUsage delta, CancellationToken cancellationToken)
    {
        await using (var charge = new NpgsqlCommand(
            """
            UPDATE tenants
               SET used_instances = used_instances + $2, used_vcpus = used_vcpus + $3, used_memory_mb = used_memory_mb + $4,
                   used_disk_gb = used_disk_gb + $5, used_snapshots = used_snapshots + $6,
                   used_images = used_images + $7, used_image_gb = used_image_gb + $8
             WHERE id = $1
               AND ($2 <= 0 OR used_instances + $2 <= max_instances)
               AND ($3 <= 0 OR used_vcpus + $3 <= max_vcpus)
               AND ($4 <= 0 OR used_memory_mb + $4 <= max_memory_mb)
               AND ($5 <= 0 OR used_disk_gb + $5 <= max_disk_gb)
               AND ($6 <= 0 OR used_snapshots + $6 <= max_snapshots)
               AND ($7 <= 0 OR used_images + $7 <= max_images)
               AND ($8 <= 0 OR used_image_gb + $8 <= max_image_gb)
            """, transaction.Connection, transaction))
        {
            AddUsage(charge, projectId, delta);
            if (await charge.ExecuteNonQueryAsync(cancellationToken) == 1)
            {
                return;
            }
        }

        await using var read = new NpgsqlCommand(
            "SELECT used_instances, max_instances, used_vcpus, max_vcpus, used_memory_mb, max_memory_mb, used_disk_gb, max_disk_gb, used_snapshots, max_snapshots, used_images, max_images, used_image_gb, max_image_gb FROM tenants WHERE id = $1",
            transaction.Connection, transaction);
        read.Parameters.Add(new NpgsqlParameter { Value = projectId });
        await using var reader = await read.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return;
        }
        var exceeded = new List<string>();
        void Check(string name, long asked, int usedOrdinal)
        {
            var used = Convert.ToInt64(reader.GetValue(usedOrdinal), System.Globalization.CultureInfo.InvariantCulture);
            var max = Convert.ToInt64(reader.GetValue(usedOrdinal + 1), System.Globalization.CultureInfo.InvariantCulture);
            if (asked > 0 && used + asked > max)
            {
                exceeded.Add($"{name} {used} used + {asked} asked > {max} allowed");
            }
        }
        Check("instances", delta.Instances, 0);
        Check("vcpus", delta.Vcpus, 2);
        Check("memory_mb", delta.MemoryMb, 4);
        Check("disk_gb", delta.DiskGb, 6);
        Check("snapshots", delta.Snapshots, 8);
        Check("images", delta.Images, 10);
        Check("image_gb", delta.ImageGb, 12);
        throw new QuotaExceededException($"Quota exceeded for tenant '{projectId}': {string.Join("; ", exceeded)}.");
    }

    /// <summary>Gives usage back; never below zero, so a release repeated by mistake cannot go negative.</summary>
    public static async Task ReleaseAsync(NpgsqlTransaction transaction, string projectId, QuotaUsage usage, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            UPDATE tenants
               SET used_instances = greatest(used_instances - $2, 0), used_vcpus = greatest(used_vcpus - $3, 0),
                   used_memory_mb = greatest(used_memory_mb - $4, 0), used_disk_gb = greatest(used_disk_gb - $5, 0),
                   used_snapshots = greatest(used_snapshots - $6, 0), used_images = greatest(used_images - $7, 0),
                   used_image_gb = greatest(used_image_gb - $8, 0)
             WHERE id = $1
            """, transaction.Connection, transaction);
        AddUsage(command, projectId, usage);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Releases what a VM counts, if it is still placed. Must run before the VM row's node is
    /// cleared in the same transaction: the placed VM is what proves the charge is still held,
    /// so a release can never happen twice.
    /// </summary>
    public static async Task ReleaseVmAsync(NpgsqlTransaction transaction, Guid vmId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            UPDATE tenants AS t
               SET used_instances = greatest(t.used_instances - 1, 0), used_vcpus = greatest(t.used_vcpus - v.vcpus, 0),
                   used_memory_mb = greatest(t.used_memory_mb - v.memory_mb, 0), used_disk_gb = greatest(t.used_disk_gb - v.disk_gb, 0)
              FROM vms AS v
             WHERE v.id = $1 AND v.node_id IS NOT NULL AND t.id = v.project_id
            """, transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = vmId });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>What <paramref name="asked"/> would exceed as usage stands now, or null; a read, not a charge.</summary>
    public static async Task<string?> ExcessAsync(LedgerDbContext db, string projectId, QuotaUsage asked, CancellationToken cancellationToken)
    {
        var tenant = await db.Tenants.AsNoTracking().SingleOrDefaultAsync(t => t.Id == projectId, cancellationToken);
        if (tenant is null)
        {
            return null;
        }
        var exceeded = new List<string>();
        void Check(string name, long used, long more, long max)
        {
            if (more > 0 && used + more > max)
            {
                exceeded.Add($"{name} {used} used + {more} asked > {max} allowed");
            }
        }
        Check("instances", tenant.UsedInstances, asked.Instances, tenant.MaxInstances);
        Check("vcpus", tenant.UsedVcpus, asked.Vcpus, tenant.MaxVcpus);
        Check("memory_mb", tenant.UsedMemoryMb, asked.MemoryMb, tenant.MaxMemoryMb);
        Check("disk_gb", tenant.UsedDiskGb, asked.DiskGb, tenant.MaxDiskGb);
        Check("snapshots", tenant.UsedSnapshots, asked.Snapshots, tenant.MaxSnapshots);
        Check("images", tenant.UsedImages, asked.Images, tenant.MaxImages);
        Check("image_gb", tenant.UsedImageGb, asked.ImageGb, tenant.MaxImageGb);
        return exceeded.Count == 0 ? null : $"Quota exceeded for tenant '{projectId}': {string.Join("; ", exceeded)}.";
    }

    private static void AddUsage(NpgsqlCommand command, string projectId, QuotaUsage usage)
    {
        command.Parameters.Add(new NpgsqlParameter { Value = projectId });
        command.Parameters.Add(new NpgsqlParameter { Value = usage.Instances });
        command.Parameters.Add(new NpgsqlParameter { Value = usage.Vcpus });
        command.Parameters.Add(new NpgsqlParameter { Value = usage.MemoryMb });
        command.Parameters.Add(new NpgsqlParameter { Value = usage.DiskGb });
        command.Parameters.Add(new NpgsqlParameter { Value = usage.Snapshots });
        command.Parameters.Add(new NpgsqlParameter { Value = usage.Images });
        command.Parameters.Add(new NpgsqlParameter { Value = usage.ImageGb });
    }
}

/// <summary>Checks of quota values, and their place on the tenant's row.</summary>
internal static class QuotaRules
{
    public const int MaxInstances = 100_000;

    public static void Validate(Quota quota)
    {
        Range("instances", quota.Instances, MaxInstances);
        Range("vcpus", quota.Vcpus, 10_000_000);
        Range("memory_mb", quota.MemoryMb, 1L << 40);
        Range("disk_gb", quota.DiskGb, 1L << 40);
        Range("snapshots", quota.Snapshots, 1_000_000);
        Range("images", quota.Images, 1_000_000);
        Range("image_gb", quota.ImageGb, 1L << 40);
    }

    /// <summary>A new tenant's quota: what <paramref name="quota"/> gives, the default for the images it leaves unset.</summary>
    public static void Apply(TenantEntity tenant, Quota quota, Quota defaults)
    {
        tenant.MaxInstances = quota.Instances;
        tenant.MaxVcpus = quota.Vcpus;
        tenant.MaxMemoryMb = quota.MemoryMb;
        tenant.MaxDiskGb = quota.DiskGb;
        tenant.MaxSnapshots = quota.Snapshots;
        tenant.MaxImages = quota.HasImages ? quota.Images : defaults.Images;
        tenant.MaxImageGb = quota.HasImageGb ? quota.ImageGb : defaults.ImageGb;
    }

    private static void Range(string field, long value, long max)
    {
        if (value < 0 || value > max)
        {
            throw ApiException.Invalid($"quota.{field} must be between 0 and {max}, not {value}.");
        }
    }
}
