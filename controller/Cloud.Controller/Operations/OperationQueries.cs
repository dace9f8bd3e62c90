using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;

namespace Cloud.Controller.Operations;

/// <summary>Reading operations: a tenant sees its own, an operator all.</summary>
internal sealed class OperationQueries(IDbContextFactory<LedgerDbContext> contexts, TimeProvider time)
{
    private const int MaxPageSize = 500;

    public async Task<Operation> GetAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        var guid = VmValidation.RequireId(id, "Operation");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var operation = await Visible(db, caller).SingleOrDefaultAsync(o => o.Id == guid, cancellationToken)
            ?? throw ApiException.NotFound("Operation", id);
        return ApiMapping.ToProto(operation);
    }

    /// <summary>Newest first; the page token is the id of the last operation of the previous page.</summary>
    public async Task<ListOperationsResponse> ListAsync(Caller caller, ListOperationsRequest request, CancellationToken cancellationToken)
    {
        if (request.PageSize is < 0 or > MaxPageSize)
        {
            throw ApiException.Invalid($"page_size must be between 0 and {MaxPageSize}.");
        }
        var pageSize = request.PageSize == 0 ? 50 : request.PageSize;
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var query = Visible(db, caller);
        if (request.PageToken.Length > 0)
        {
            var after = Guid.TryParse(request.PageToken, out var token) ? token : throw ApiException.Invalid("page_token is invalid.");
            query = query.Where(o => o.Id.CompareTo(after) < 0);
        }
        var page = await query.OrderByDescending(o => o.Id).Take(pageSize + 1).ToListAsync(cancellationToken);
        var response = new ListOperationsResponse { Operations = { page.Take(pageSize).Select(ApiMapping.ToProto) } };
        if (page.Count > pageSize)
        {
            response.NextPageToken = page[pageSize - 1].Id.ToString();
        }
        return response;
    }

    /// <summary>
    /// Cancels an operation no replica has started yet, undoing what its request recorded, in
    /// one transaction with the state change; a started or finished one is refused. Deleting a
    /// VM is never cancelled: the guest may already be gone.
    /// </summary>
    public async Task<Operation> CancelAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        caller.RequireWrite();
        var guid = VmValidation.RequireId(id, "Operation");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var operation = await Visible(db, caller).SingleOrDefaultAsync(o => o.Id == guid, cancellationToken)
            ?? throw ApiException.NotFound("Operation", id);
        if (operation.Kind == OperationKinds.VmDelete)
        {
            throw new ApiException(StatusCode.FailedPrecondition, "A VM's deletion cannot be cancelled.");
        }
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var now = time.GetUtcNow();
        var cancelled = await db.Operations.Where(o => o.Id == guid && o.State == OperationStates.Pending).ExecuteUpdateAsync(s => s
            .SetProperty(o => o.State, OperationStates.Failed)
            .SetProperty(o => o.ErrorCode, ApiException.CodeName(StatusCode.Cancelled))
            .SetProperty(o => o.ErrorMessage, "Cancelled before it started.")
            .SetProperty(o => o.UpdatedAt, now)
            .SetProperty(o => o.Owner, (string?)null)
            .SetProperty(o => o.LeaseExpiresAt, (DateTimeOffset?)null), cancellationToken);
        if (cancelled == 0)
        {
            throw new ApiException(StatusCode.FailedPrecondition, $"Operation {id} is {operation.State}; only a PENDING operation can be cancelled.");
        }
        var npgsql = (Npgsql.NpgsqlTransaction)transaction.GetDbTransaction();
        switch (operation.Kind)
        {
            case OperationKinds.VmCreate or OperationKinds.VmCreateFromSnapshot:
                await VmHandlerSupport.ExecuteAsync(npgsql, "UPDATE vms SET state = 'DELETED', error = 'Its creation was cancelled.', updated_at = $2 WHERE id = $1 AND node_id IS NULL",
                    cancellationToken, Guid.Parse(operation.TargetId), now);
                break;
            case OperationKinds.VmCreateBatch:
                await VmHandlerSupport.ExecuteAsync(npgsql, "UPDATE vms SET state = 'DELETED', error = 'Its creation was cancelled.', updated_at = $2 WHERE id = ANY($1) AND node_id IS NULL",
                    cancellationToken, VmHandlerSupport.Input<CreateVmsResult>(operation).Vms.Select(v => Guid.Parse(v.Id)).ToArray(), now);
                break;
            case OperationKinds.SnapshotCreate:
                await SnapshotRows.DiscardAsync(npgsql, Guid.Parse(VmHandlerSupport.Input<Snapshot>(operation).Id), "Its creation was cancelled.", cancellationToken);
                break;
            case OperationKinds.SnapshotDelete:
                await VmHandlerSupport.ExecuteAsync(npgsql, "UPDATE snapshots SET state = 'READY' WHERE id = $1 AND state = 'DELETING'",
                    cancellationToken, Guid.Parse(VmHandlerSupport.Input<DeleteSnapshotRequest>(operation).Id));
                break;
        }
        await transaction.CommitAsync(cancellationToken);
        return ApiMapping.ToProto(await db.Operations.AsNoTracking().SingleAsync(o => o.Id == guid, cancellationToken));
    }

    private static IQueryable<OperationEntity> Visible(LedgerDbContext db, Caller caller)
        => caller.IsOperator ? db.Operations.AsNoTracking() : db.Operations.AsNoTracking().Where(o => o.ProjectId == caller.ProjectId);
}
