using Cloud.Controller.Data;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Operations;

/// <summary>Progress and outcome writes of an operation.</summary>
internal static class OperationUpdates
{
    public static Task ProgressAsync(LedgerDbContext db, Guid id, int progress, TimeProvider time, CancellationToken cancellationToken)
        => db.Operations.Where(o => o.Id == id && (o.State == OperationStates.Pending || o.State == OperationStates.Running)).ExecuteUpdateAsync(
            s => s.SetProperty(o => o.State, OperationStates.Running).SetProperty(o => o.Progress, progress).SetProperty(o => o.UpdatedAt, time.GetUtcNow()),
            cancellationToken);

    public static void Succeed(OperationEntity operation, DateTimeOffset now)
    {
        operation.State = OperationStates.Succeeded;
        operation.Progress = 100;
        operation.UpdatedAt = now;
        operation.Owner = null;
        operation.LeaseExpiresAt = null;
    }

    public static void Fail(OperationEntity operation, string code, string message, DateTimeOffset now)
    {
        operation.State = OperationStates.Failed;
        operation.ErrorCode = code;
        operation.ErrorMessage = message.Length > 2000 ? message[..2000] : message;
        operation.UpdatedAt = now;
        operation.Owner = null;
        operation.LeaseExpiresAt = null;
    }

    public static async Task FailAsync(IDbContextFactory<LedgerDbContext> contexts, Guid id, string code, string message, TimeProvider time, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var operation = await db.Operations.SingleAsync(o => o.Id == id, cancellationToken);
        if (OperationStates.IsFinal(operation.State))
        {
            // Finished (or cancelled) meanwhile: the first outcome stands.
            return;
        }
        Fail(operation, code, message, time.GetUtcNow());
        await db.SaveChangesAsync(cancellationToken);
    }
}
