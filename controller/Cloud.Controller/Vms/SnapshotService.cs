using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Operations;
using Cloud.Controller.Quotas;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Vms;

/// <summary>
/// Snapshots of VMs. A snapshot counts against the snapshots quota from the request that
/// creates it (charged in the same transaction as its row) until it is deleted.
/// </summary>
internal sealed class SnapshotService(IDbContextFactory<LedgerDbContext> contexts, OperationStarter operations)
{
    public async Task<Operation> CreateAsync(Caller caller, CreateSnapshotRequest request, CancellationToken cancellationToken)
    {
        caller.RequireWrite();
        VmValidation.RequireName(request.Name, "name");
        var snapshotId = Guid.CreateVersion7();
        var input = new Snapshot { Id = snapshotId.ToString(), VmId = request.VmId, Name = request.Name };
        return await operations.StartAsync(caller, OperationKinds.SnapshotCreate, request, request.IdempotencyKey, input, async (db, transaction, now) =>
        {
            var vm = await OperationStarter.LockVmAsync(db, caller, request.VmId, cancellationToken);
            VmService.RequireState(vm, OperationKinds.SnapshotCreate, [VmStates.Running, VmStates.Stopped]);
            try
            {
                await QuotaLedger.ChargeAsync(transaction, vm.ProjectId, QuotaUsage.OneSnapshot, cancellationToken);
            }
            catch (QuotaExceededException e)
            {
                throw e.ToApi();
            }
            db.Snapshots.Add(new SnapshotEntity
            {
                Id = snapshotId,
                ProjectId = vm.ProjectId,
                VmId = vm.Id,
                Name = request.Name,
                State = SnapshotStates.Creating,
                CreatedAt = now,
                UpdatedAt = now,
            });
            vm.UpdatedAt = now;
            return vm.Id.ToString();
        }, cancellationToken);
    }

    public Task<Operation> RestoreAsync(Caller caller, RestoreSnapshotRequest request, CancellationToken cancellationToken)
        => operations.StartAsync(caller, OperationKinds.SnapshotRestore, request, request.IdempotencyKey, request, async (db, _, now) =>
        {
            var snapshot = await FindAsync(db, caller, request.Id, cancellationToken);
            RequireReady(snapshot, request.Id, "restored");
            var vm = await OperationStarter.LockVmAsync(db, caller, snapshot.VmId.ToString(), cancellationToken);
            VmService.RequireState(vm, OperationKinds.SnapshotRestore, [VmStates.Running, VmStates.Stopped]);
            vm.UpdatedAt = now;
            return vm.Id.ToString();
        }, cancellationToken);

    public Task<Operation> DeleteAsync(Caller caller, DeleteSnapshotRequest request, CancellationToken cancellationToken)
        => operations.StartAsync(caller, OperationKinds.SnapshotDelete, request, request.IdempotencyKey, request, async (db, _, now) =>
        {
            var snapshot = await FindAsync(db, caller, request.Id, cancellationToken);
            var vm = await OperationStarter.LockVmAsync(db, caller, snapshot.VmId.ToString(), cancellationToken);
            db.Snapshots.Attach(snapshot);
            snapshot.State = SnapshotStates.Deleting;
            snapshot.UpdatedAt = now;
            return vm.Id.ToString();
        }, cancellationToken);

    public async Task<Snapshot> GetAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var snapshot = await FindAsync(db, caller, id, cancellationToken);
        var node = snapshot.NodeId is { } nodeId ? await db.Nodes.AsNoTracking().Where(n => n.Id == nodeId).Select(n => n.Name).SingleOrDefaultAsync(cancellationToken) : null;
        return ApiMapping.ToProto(snapshot, node);
    }

    /// <summary>
    /// Refuses, naming the reason, a snapshot that is not READY: a LOST one says where its data
    /// went, so that the tenant knows a retry will not help.
    /// </summary>
    internal static void RequireReady(SnapshotEntity snapshot, string id, string verb)
    {
        if (snapshot.State == SnapshotStates.Lost)
        {
            throw new ApiException(StatusCode.FailedPrecondition, $"Snapshot '{id}' is LOST ({snapshot.Error}); it cannot be {verb}.");
        }
        if (snapshot.State != SnapshotStates.Ready)
        {
            throw new ApiException(StatusCode.FailedPrecondition, $"Snapshot '{id}' is {snapshot.State}; only a READY snapshot can be {verb}.");
        }
    }

    public async Task<ListSnapshotsResponse> ListAsync(Caller caller, ListSnapshotsRequest request, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var snapshots = db.Snapshots.AsNoTracking().Where(s => s.State != SnapshotStates.Deleted && (caller.IsOperator || s.ProjectId == caller.ProjectId));
        if (request.VmId.Length > 0)
        {
            var vmId = VmValidation.RequireId(request.VmId, "VM");
            if (!await VmService.VisibleVms(db, caller).AnyAsync(v => v.Id == vmId && v.State != VmStates.Deleted, cancellationToken))
            {
                throw ApiException.NotFound("VM", request.VmId);
            }
            snapshots = snapshots.Where(s => s.VmId == vmId);
        }
        var list = await snapshots.OrderBy(s => s.CreatedAt).Take(1000)
            .Select(s => new { Snapshot = s, Node = db.Nodes.Where(n => n.Id == s.NodeId).Select(n => n.Name).FirstOrDefault() })
            .ToListAsync(cancellationToken);
        return new ListSnapshotsResponse { Snapshots = { list.Select(s => ApiMapping.ToProto(s.Snapshot, s.Node)) } };
    }

    private static async Task<SnapshotEntity> FindAsync(LedgerDbContext db, Caller caller, string id, CancellationToken cancellationToken)
    {
        var guid = VmValidation.RequireId(id, "Snapshot");
        return await db.Snapshots.AsNoTracking().SingleOrDefaultAsync(
                s => s.Id == guid && s.State != SnapshotStates.Deleted && (caller.IsOperator || s.ProjectId == caller.ProjectId), cancellationToken)
            ?? throw ApiException.NotFound("Snapshot", id);
    }
}

internal static class SnapshotStates
{
    public const string Creating = "CREATING";
    public const string Ready = "READY";
    public const string Error = "ERROR";
    public const string Deleting = "DELETING";
    public const string Deleted = "DELETED";

    /// <summary>Its node no longer holds its data, or is down: the row's error says which.</summary>
    public const string Lost = "LOST";
}
