using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Catalog;

/// <summary>Flavors: what tenants choose from when they create a VM (images: see Images/).</summary>
internal sealed class CatalogService(IDbContextFactory<LedgerDbContext> contexts, TimeProvider time)
{
    public const int MaxVcpus = 256;
    public const long MaxMemoryMb = 4L * 1024 * 1024;
    public const long MaxDiskGb = 64 * 1024;

    public async Task<ListFlavorsResponse> ListFlavorsAsync(Caller caller, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var flavors = await Usable(db, caller)
            .OrderBy(f => f.Vcpus).ThenBy(f => f.MemoryMb).ThenBy(f => f.Name).ToListAsync(cancellationToken);
        return new ListFlavorsResponse { Flavors = { flavors.Select(ApiMapping.ToProto) } };
    }

    /// <summary>Operators define flavors; sizes are checked against what any node could ever hold.</summary>
    public async Task<Flavor> CreateFlavorAsync(Caller caller, Flavor flavor, CancellationToken cancellationToken)
    {
        if (!caller.IsOperator)
        {
            throw new ApiException(StatusCode.PermissionDenied, "Only operators define flavors.");
        }
        VmValidation.RequireResourceName(flavor.Name, "name");
        if (flavor.Vcpus is < 1 or > MaxVcpus)
        {
            throw ApiException.Invalid($"vcpus must be between 1 and {MaxVcpus}, not {flavor.Vcpus}.");
        }
        if (flavor.MemoryMb is < 64 or > MaxMemoryMb)
        {
            throw ApiException.Invalid($"memory_mb must be between 64 and {MaxMemoryMb}, not {flavor.MemoryMb}.");
        }
        if (flavor.DiskGb is < 0 or > MaxDiskGb)
        {
            throw ApiException.Invalid($"disk_gb must be between 0 and {MaxDiskGb}, not {flavor.DiskGb}.");
        }
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        db.Flavors.Add(new FlavorEntity
        {
            Name = flavor.Name,
            Vcpus = flavor.Vcpus,
            MemoryMb = flavor.MemoryMb,
            DiskGb = flavor.DiskGb,
            IsPublic = flavor.IsPublic,
            CreatedAt = time.GetUtcNow(),
        });
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (e.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation })
        {
            throw new ApiException(StatusCode.AlreadyExists, $"Flavor '{flavor.Name}' already exists.");
        }
        return flavor;
    }

    /// <summary>
    /// The flavors a caller may see and use: public ones, the private ones its tenant was
    /// granted, every one for operators. Any other answers as if it did not exist.
    /// </summary>
    internal static IQueryable<FlavorEntity> Usable(LedgerDbContext db, Caller caller)
        => caller.IsOperator
            ? db.Flavors.AsNoTracking()
            : db.Flavors.AsNoTracking().Where(f => f.IsPublic || db.FlavorAccess.Any(a => a.FlavorName == f.Name && a.TenantId == caller.ProjectId));

    /// <summary>Grants (or withdraws) a tenant's use of a private flavor; doing it twice changes nothing.</summary>
    public async Task<Flavor> SetAccessAsync(Caller caller, FlavorAccessRequest request, bool granted, CancellationToken cancellationToken)
    {
        caller.RequireOperator("grant flavors");
        VmValidation.RequireResourceName(request.Flavor, "flavor");
        VmValidation.RequireName(request.Tenant, "tenant");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var flavor = await db.Flavors.AsNoTracking().SingleOrDefaultAsync(f => f.Name == request.Flavor, cancellationToken)
            ?? throw ApiException.NotFound("Flavor", request.Flavor);
        if (flavor.IsPublic)
        {
            throw new ApiException(StatusCode.FailedPrecondition, $"Flavor '{flavor.Name}' is public: every tenant can use it.");
        }
        if (!await db.Tenants.AnyAsync(t => t.Id == request.Tenant, cancellationToken))
        {
            throw ApiException.NotFound("Tenant", request.Tenant);
        }
        if (granted)
        {
            await db.Database.ExecuteSqlAsync(
                $"INSERT INTO flavor_access (flavor_name, tenant_id) VALUES ({flavor.Name}, {request.Tenant}) ON CONFLICT DO NOTHING", cancellationToken);
        }
        else
        {
            await db.FlavorAccess.Where(a => a.FlavorName == flavor.Name && a.TenantId == request.Tenant).ExecuteDeleteAsync(cancellationToken);
        }
        return ApiMapping.ToProto(flavor);
    }
}
