using System.Security.Cryptography;
using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Google.Protobuf;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;

namespace Cloud.Controller.Operations;

/// <summary>What a mutation writes besides its operation, in the operation's transaction.</summary>
/// <returns>The id of the operation's target (a VM id).</returns>
internal delegate Task<string> PrepareOperation(LedgerDbContext db, NpgsqlTransaction transaction, DateTimeOffset now);

/// <summary>
/// The one way a mutation starts: the reader check, the idempotency key, the mutation's own
/// writes and its operation in one transaction, then the runner's doorbell. A retry with the
/// same key and the same request gets the first operation back; the same key with another
/// request is refused (409), never silently answered.
/// </summary>
internal sealed class OperationStarter(IDbContextFactory<LedgerDbContext> contexts, OperationQueue queue, TimeProvider time)
{
    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default);

    public async Task<Operation> StartAsync(
        Caller caller,
        string kind,
        IMessage request,
        string idempotencyKey,
        IMessage? handlerInput,
        PrepareOperation prepare,
        CancellationToken cancellationToken)
    {
        caller.RequireWrite();
        VmValidation.RequireIdempotencyKey(idempotencyKey.Length == 0 ? null : idempotencyKey);
        var requestHash = Convert.ToHexStringLower(SHA256.HashData(request.ToByteArray()));
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        if (await FindIdempotentAsync(db, caller, idempotencyKey, kind, requestHash, cancellationToken) is { } earlier)
        {
            return earlier;
        }

        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var now = time.GetUtcNow();
        var targetId = await prepare(db, (NpgsqlTransaction)transaction.GetDbTransaction(), now);
        var operation = new OperationEntity
        {
            Id = Guid.CreateVersion7(),
            ProjectId = caller.ProjectId,
            Kind = kind,
            TargetId = targetId,
            State = OperationStates.Pending,
            IdempotencyKey = idempotencyKey.Length == 0 ? null : idempotencyKey,
            RequestHash = requestHash,
            Request = handlerInput is null ? null : Formatter.Format(handlerInput),
            CreatedAt = now,
            UpdatedAt = now,
            TraceParent = OperationTelemetry.CurrentTraceParent(),
        };
        db.Operations.Add(operation);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (e is DbUpdateConcurrencyException
            || e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            // A concurrent request with the same key won, or the target changed under us.
            await transaction.RollbackAsync(cancellationToken);
            db.ChangeTracker.Clear();
            return await FindIdempotentAsync(db, caller, idempotencyKey, kind, requestHash, cancellationToken)
                ?? throw new ApiException(StatusCode.Aborted, "The resource changed while the request was being recorded; retry.");
        }
        queue.Enqueue(operation.Id);
        return ApiMapping.ToProto(operation);
    }

    /// <summary>
    /// Locks a VM of the caller's (an operator's: of anyone) for the transaction, after checking
    /// that no other operation is under way on it: one mutation at a time per VM.
    /// </summary>
    public static async Task<VmEntity> LockVmAsync(LedgerDbContext db, Caller caller, string id, CancellationToken cancellationToken)
    {
        var guid = VmValidation.RequireId(id, "VM");
        await db.Database.ExecuteSqlAsync($"SELECT 1 FROM vms WHERE id = {guid} FOR UPDATE", cancellationToken);
        var vm = await db.Vms.SingleOrDefaultAsync(
            v => v.Id == guid && v.State != VmStates.Deleted && (caller.IsOperator || v.ProjectId == caller.ProjectId), cancellationToken)
            ?? throw ApiException.NotFound("VM", id);
        var target = guid.ToString();
        var busy = await db.Operations.AsNoTracking()
            .Where(o => o.TargetId == target && (o.State == OperationStates.Pending || o.State == OperationStates.Running))
            .Select(o => new { o.Id, o.Kind })
            .FirstOrDefaultAsync(cancellationToken);
        if (busy is not null)
        {
            throw new ApiException(StatusCode.FailedPrecondition,
                $"VM '{id}' has operation {busy.Id} ({busy.Kind}) under way; wait for it or cancel it.",
                new Dictionary<string, object?> { ["httpStatus"] = 409, ["operation"] = busy.Id.ToString() });
        }
        return vm;
    }

    private static async Task<Operation?> FindIdempotentAsync(LedgerDbContext db, Caller caller, string key, string kind, string requestHash, CancellationToken cancellationToken)
    {
        if (key.Length == 0)
        {
            return null;
        }
        var earlier = await db.Operations.AsNoTracking()
            .SingleOrDefaultAsync(o => o.ProjectId == caller.ProjectId && o.IdempotencyKey == key, cancellationToken);
        if (earlier is null)
        {
            return null;
        }
        return earlier.RequestHash == requestHash && earlier.Kind == kind
            ? ApiMapping.ToProto(earlier)
            : throw new ApiException(StatusCode.FailedPrecondition,
                $"Idempotency-Key '{key}' was already used for a different request (operation {earlier.Id}).",
                new Dictionary<string, object?> { ["httpStatus"] = 409, ["reason"] = "IDEMPOTENCY_KEY_REUSED" });
    }
}
