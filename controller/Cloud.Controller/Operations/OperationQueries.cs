using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Operations;

/// <summary>Reading operations: a tenant sees its own, an operator all.</summary>
internal sealed class OperationQueries(IDbContextFactory<LedgerDbContext> contexts)
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

    private static IQueryable<OperationEntity> Visible(LedgerDbContext db, Caller caller)
        => caller.IsOperator ? db.Operations.AsNoTracking() : db.Operations.AsNoTracking().Where(o => o.ProjectId == caller.ProjectId);
}
