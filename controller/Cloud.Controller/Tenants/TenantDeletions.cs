using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Operations;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Tenants;

/// <summary>
/// DELETE /v1/tenants/{id} (DeleteTenant over gRPC): operators only. The request revokes the
/// tenant's tokens and marks it DELETING in the transaction that records the tenant.delete
/// operation, so the tenant's tokens are refused from that commit on (open watches end at their
/// next token check); <see cref="DeleteTenantHandler"/> then removes what it owns. Without
/// cascade, a tenant that owns VMs or snapshots is refused (409) and nothing changes.
/// </summary>
internal sealed class TenantDeletions(IDbContextFactory<LedgerDbContext> contexts, OperationStarter operations, TimeProvider time)
{
    public async Task<Operation> DeleteAsync(Caller caller, DeleteTenantRequest request, CancellationToken cancellationToken)
    {
        caller.RequireOperator("delete tenants");
        VmValidation.RequireName(request.Id, "id");
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            // Asked again while it runs: the same operation, whatever the cascade flag says now.
            if (await UnderWayAsync(db, request.Id, cancellationToken) is { } running)
            {
                return ApiMapping.ToProto(running);
            }
        }
        var outcome = new TenantDeletion { Cascade = request.Cascade };
        try
        {
            return await operations.StartAsync(caller, OperationKinds.TenantDelete, request, request.IdempotencyKey, outcome, async (db, _, now) =>
            {
                // One deletion at a time per tenant: concurrent requests queue on the row.
                await db.Database.ExecuteSqlAsync($"SELECT 1 FROM tenants WHERE id = {request.Id} FOR UPDATE", cancellationToken);
                var tenant = await db.Tenants.SingleOrDefaultAsync(t => t.Id == request.Id, cancellationToken)
                    ?? throw ApiException.NotFound("Tenant", request.Id);
                if (await UnderWayAsync(db, request.Id, cancellationToken) is { } started)
                {
                    throw new AlreadyUnderWay(started);
                }
                await RefuseWhatCannotGoAsync(db, request, cancellationToken);
                tenant.DeletingSince ??= time.GetUtcNow();
                outcome.Tokens = await db.ApiTokens.Where(t => t.TenantId == request.Id && t.RevokedAt == null)
                    .ExecuteUpdateAsync(s => s.SetProperty(t => t.RevokedAt, now), cancellationToken);
                return request.Id;
            }, cancellationToken);
        }
        catch (AlreadyUnderWay e)
        {
            return ApiMapping.ToProto(e.Operation);
        }
    }

    /// <summary>The tenant's deletion that is under way, if any.</summary>
    internal static Task<OperationEntity?> UnderWayAsync(LedgerDbContext db, string tenantId, CancellationToken cancellationToken)
        => db.Operations.AsNoTracking()
            .Where(o => o.Kind == OperationKinds.TenantDelete && o.TargetId == tenantId
                && (o.State == OperationStates.Pending || o.State == OperationStates.Running))
            .OrderBy(o => o.CreatedAt)
            .FirstOrDefaultAsync(cancellationToken);

    /// <summary>
    /// Refuses, with counts, what the deletion must not do: delete VMs or snapshots nobody asked to
    /// delete (no cascade), or delete images that other tenants' VMs run from (never: those
    /// tenants' disks depend on them).
    /// </summary>
    private static async Task RefuseWhatCannotGoAsync(LedgerDbContext db, DeleteTenantRequest request, CancellationToken cancellationToken)
    {
        var id = request.Id;
        if (!request.Cascade)
        {
            var vms = await db.Vms.CountAsync(v => v.ProjectId == id && v.State != VmStates.Deleted, cancellationToken);
            var snapshots = await db.Snapshots.CountAsync(s => s.ProjectId == id && s.State != SnapshotStates.Deleted, cancellationToken);
            if (vms > 0 || snapshots > 0)
            {
                throw new ApiException(StatusCode.FailedPrecondition,
                    $"Tenant '{id}' still owns {vms} VM(s) and {snapshots} snapshot(s); delete them first, or delete the tenant with cascade=true to delete them with it.",
                    new Dictionary<string, object?> { ["httpStatus"] = 409, ["reason"] = "TENANT_NOT_EMPTY", ["vms"] = vms, ["snapshots"] = snapshots });
            }
        }
        var foreignUsers = await db.Vms.CountAsync(v => v.ProjectId != id && v.State != VmStates.Deleted
            && db.Images.Any(i => i.Id == v.ImageId && i.ProjectId == id && i.State != ImageStates.Deleted), cancellationToken);
        if (foreignUsers > 0)
        {
            throw new ApiException(StatusCode.FailedPrecondition,
                $"Images of tenant '{id}' are used by {foreignUsers} VM(s) of other tenants; those VMs must go before the images can.",
                new Dictionary<string, object?> { ["httpStatus"] = 409, ["reason"] = "TENANT_IMAGES_IN_USE", ["vms"] = foreignUsers });
        }
    }

    /// <summary>Another request started the deletion between the first look and the row lock.</summary>
    private sealed class AlreadyUnderWay(OperationEntity operation) : Exception("The tenant's deletion is already under way.")
    {
        public OperationEntity Operation { get; } = operation;
    }
}
