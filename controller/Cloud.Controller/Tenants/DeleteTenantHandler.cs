using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Images;
using Cloud.Controller.Operations;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Tenants;

/// <summary>
/// tenant.delete. With cascade, the tenant's VMs go first, each through a vm.delete operation
/// of its own (so its node's agent removes the guest and the ledger returns its capacity;
/// snapshots go with their VM): operations not yet started on them are cancelled, those under
/// way (a create, a snapshot, a migration) are waited for. Then its images (files and nodes'
/// copies, as an owner's delete does), the image memberships both ways, its server groups and
/// its history (operations, placement decisions, idempotency records, DELETED VM rows, so that
/// a tenant made later with the same id starts empty), and last the tenant row, whose quota
/// and tokens go with it. Every step is safe to run again: a replica that takes the operation
/// over starts from what the rows say.
/// </summary>
internal sealed partial class DeleteTenantHandler(
    IDbContextFactory<LedgerDbContext> contexts,
    VmService vms,
    OperationQueries operationQueries,
    ImageService images,
    IOptions<OperationOptions> options,
    TimeProvider time,
    ILogger<DeleteTenantHandler> logger) : IOperationHandler
{
    /// <summary>How often the VMs' deletions are looked at.</summary>
    internal static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>How long the VMs may take to go before the deletion fails (and can be asked again).</summary>
    internal static readonly TimeSpan MaxWait = TimeSpan.FromMinutes(10);

    /// <summary>Deletions of one VM that may fail before the tenant's deletion gives up.</summary>
    private const int MaxDeleteAttempts = 3;

    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default);

    public string Kind => OperationKinds.TenantDelete;

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        var outcome = VmHandlerSupport.Input<TenantDeletion>(operation);
        var tenantId = operation.TargetId;
        // The tenant's own view, with an operator's rights: the VMs' deletions are the tenant's
        // operations (and go with its history).
        var asTenant = new Caller($"tenant-deletion:{operation.Id}", tenantId, TokenRoles.Operator);
        var asOperator = new Caller($"tenant-deletion:{operation.Id}", TokenAuthenticator.OperatorProject, TokenRoles.Operator);

        var failure = await DeleteVmsAsync(operation, asTenant, outcome, cancellationToken);
        if (failure is null)
        {
            failure = await DeleteImagesAsync(operation, asOperator, outcome, cancellationToken);
        }
        if (failure is not null)
        {
            Log.Failed(logger, tenantId, failure);
            await OperationUpdates.FailAsync(contexts, operation.Id, ApiException.CodeName(StatusCode.FailedPrecondition),
                $"{failure} Tenant '{tenantId}' stays DELETING with its tokens revoked; delete it again.", time, cancellationToken);
            return;
        }
        await RemoveTenantAsync(operation.Id, tenantId, outcome, cancellationToken);
        Log.Deleted(logger, tenantId, outcome.Vms, outcome.Images);
    }

    /// <summary>Deletes the tenant's VMs and waits until they are DELETED; why not, when they could not go.</summary>
    private async Task<string?> DeleteVmsAsync(OperationEntity operation, Caller asTenant, TenantDeletion outcome, CancellationToken cancellationToken)
    {
        var tenantId = operation.TargetId;
        var deadline = time.GetUtcNow() + MaxWait;
        var attempts = new Dictionary<Guid, int>();
        while (true)
        {
            await using var db = await contexts.CreateDbContextAsync(cancellationToken);
            await KeepLeaseAsync(db, operation.Id, 10, cancellationToken);
            var remaining = await db.Vms.AsNoTracking().Where(v => v.ProjectId == tenantId && v.State != VmStates.Deleted)
                .Select(v => v.Id).ToListAsync(cancellationToken);
            if (remaining.Count == 0)
            {
                return null;
            }
            if (!outcome.Cascade)
            {
                return $"Tenant '{tenantId}' owns {remaining.Count} VM(s), made while its deletion was asked for without cascade; ask with cascade=true.";
            }
            var targets = remaining.Select(v => v.ToString()).ToList();
            var underWay = await db.Operations.AsNoTracking()
                .Where(o => (o.State == OperationStates.Pending || o.State == OperationStates.Running)
                    && (targets.Contains(o.TargetId) || (o.ProjectId == tenantId && o.Kind == OperationKinds.VmCreateBatch)))
                .Select(o => new { o.Id, o.Kind, o.State, o.TargetId, o.ProjectId }).ToListAsync(cancellationToken);
            foreach (var pending in underWay.Where(o => o.State == OperationStates.Pending && o.Kind != OperationKinds.VmDelete))
            {
                await TryCancelAsync(asTenant, pending.Id, cancellationToken);
            }
            // A batch names no VM as its target: while one of the tenant's runs, its VMs wait.
            var batchUnderWay = underWay.Any(o => o.Kind == OperationKinds.VmCreateBatch);
            var busy = underWay.Select(o => o.TargetId).ToHashSet(StringComparer.Ordinal);
            foreach (var vmId in remaining.Where(v => !batchUnderWay && !busy.Contains(v.ToString())))
            {
                var tried = attempts.GetValueOrDefault(vmId);
                if (tried >= MaxDeleteAttempts)
                {
                    return $"VM {vmId} could not be deleted after {tried} attempts: {await LastDeleteErrorAsync(db, vmId, cancellationToken)}";
                }
                attempts[vmId] = tried + 1;
                if (tried == 0)
                {
                    outcome.Vms++;
                }
                try
                {
                    await vms.DeleteAsync(asTenant, new DeleteVmRequest { Id = vmId.ToString() }, cancellationToken);
                }
                catch (ApiException e) when (e.Code is StatusCode.NotFound or StatusCode.Aborted)
                {
                    // Deleted meanwhile, or changed under the request: the next round looks again.
                }
            }
            if (time.GetUtcNow() > deadline)
            {
                return $"{remaining.Count} VM(s) of tenant '{tenantId}' were still not deleted after {MaxWait.TotalMinutes} minutes.";
            }
            await Task.Delay(PollInterval, time, cancellationToken);
        }
    }

    /// <summary>Cancels an operation that has not started; one that started meanwhile is waited for instead.</summary>
    private async Task TryCancelAsync(Caller asTenant, Guid operationId, CancellationToken cancellationToken)
    {
        try
        {
            await operationQueries.CancelAsync(asTenant, operationId.ToString(), cancellationToken);
        }
        catch (ApiException e) when (e.Code is StatusCode.FailedPrecondition or StatusCode.NotFound)
        {
        }
    }

    private static async Task<string> LastDeleteErrorAsync(LedgerDbContext db, Guid vmId, CancellationToken cancellationToken)
    {
        var target = vmId.ToString();
        return await db.Operations.AsNoTracking()
            .Where(o => o.TargetId == target && o.Kind == OperationKinds.VmDelete && o.State == OperationStates.Failed)
            .OrderByDescending(o => o.UpdatedAt).Select(o => o.ErrorMessage).FirstOrDefaultAsync(cancellationToken) ?? "its deletion did not finish.";
    }

    /// <summary>Deletes the tenant's images as their owner would (quota, files, nodes' copies); why not, when one could not go.</summary>
    private async Task<string?> DeleteImagesAsync(OperationEntity operation, Caller asOperator, TenantDeletion outcome, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        await KeepLeaseAsync(db, operation.Id, 80, cancellationToken);
        var owned = await db.Images.AsNoTracking().Where(i => i.ProjectId == operation.TargetId && i.State != ImageStates.Deleted)
            .Select(i => i.Id).ToListAsync(cancellationToken);
        foreach (var id in owned)
        {
            try
            {
                await images.DeleteAsync(asOperator, id, cancellationToken);
                outcome.Images++;
            }
            catch (ApiException e) when (e.Code == StatusCode.NotFound)
            {
            }
            catch (ApiException e) when (e.Code == StatusCode.FailedPrecondition)
            {
                return e.Message;
            }
        }
        return null;
    }

    /// <summary>Everything else the tenant has, its history and its row, with the operation's end, in one transaction.</summary>
    private async Task RemoveTenantAsync(Guid operationId, string tenantId, TenantDeletion outcome, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var ownImages = db.Images.Where(i => i.ProjectId == tenantId).Select(i => i.Id);
        outcome.ImageMemberships = await db.ImageMembers.Where(m => m.TenantId == tenantId || ownImages.Contains(m.ImageId)).ExecuteDeleteAsync(cancellationToken);
        outcome.ServerGroups = await db.Set<ServerGroupEntity>().Where(g => g.ProjectId == tenantId).ExecuteDeleteAsync(cancellationToken);
        await db.Operations.Where(o => o.ProjectId == tenantId && (o.State == OperationStates.Succeeded || o.State == OperationStates.Failed))
            .ExecuteDeleteAsync(cancellationToken);
        await db.Set<PlacementDecisionEntity>().Where(d => d.ProjectId == tenantId).ExecuteDeleteAsync(cancellationToken);
        await db.IdempotencyRecords.Where(r => r.ProjectId == tenantId).ExecuteDeleteAsync(cancellationToken);
        // Their snapshots' rows go with them (foreign key, cascade).
        await db.Vms.Where(v => v.ProjectId == tenantId && v.State == VmStates.Deleted).ExecuteDeleteAsync(cancellationToken);
        // Tokens and flavor access go with the row (foreign keys, cascade); the quota is on it.
        await db.Tenants.Where(t => t.Id == tenantId).ExecuteDeleteAsync(cancellationToken);
        var operation = await db.Operations.SingleAsync(o => o.Id == operationId, cancellationToken);
        if (!OperationStates.IsFinal(operation.State))
        {
            operation.Result = Formatter.Format(outcome);
            OperationUpdates.Succeed(operation, time.GetUtcNow());
        }
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>Progress, and the lease renewed: waiting for VMs may outlast one lease.</summary>
    private async Task KeepLeaseAsync(LedgerDbContext db, Guid operationId, int progress, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var until = now + options.Value.Lease;
        await db.Operations.Where(o => o.Id == operationId && (o.State == OperationStates.Pending || o.State == OperationStates.Running))
            .ExecuteUpdateAsync(s => s.SetProperty(o => o.State, OperationStates.Running).SetProperty(o => o.Progress, progress)
                .SetProperty(o => o.UpdatedAt, now).SetProperty(o => o.LeaseExpiresAt, until), cancellationToken);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 9001, Level = LogLevel.Information, Message = "Deleted tenant {TenantId}: {Vms} VM(s), {Images} image(s)")]
        public static partial void Deleted(ILogger logger, string tenantId, int vms, int images);

        [LoggerMessage(EventId = 9002, Level = LogLevel.Warning, Message = "Deleting tenant {TenantId} failed: {Reason}")]
        public static partial void Failed(ILogger logger, string tenantId, string reason);
    }
}
