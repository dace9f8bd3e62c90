using System.Runtime.CompilerServices;
using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Vms;

/// <summary>
/// A watch of VM changes: first every visible VM as it is, then each VM whose row changed
/// (DELETED included, once). It reads PostgreSQL, not this replica's memory, so it sees the
/// changes every replica and every heartbeat make. Rows are re-read over a short window behind
/// the newest change seen, because transactions commit out of timestamp order; what was
/// already sent is not sent again.
/// A watch outlives the authentication of the request that opened it, so it checks its token
/// again every <see cref="AuthOptions.TokenRecheckInterval"/> (in PostgreSQL, so a revocation on
/// any replica counts) and ends with UNAUTHENTICATED once the token is revoked or expired.
/// </summary>
internal sealed class VmWatch(IDbContextFactory<LedgerDbContext> contexts, TimeProvider time, TokenAuthenticator tokens, IOptions<AuthOptions> auth)
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan CommitWindow = TimeSpan.FromSeconds(10);

    public async IAsyncEnumerable<Vm> WatchAsync(Caller caller, LabelSelector selector, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var sent = new Dictionary<Guid, DateTimeOffset>();
        DateTimeOffset? newest = null;
        using var timer = new PeriodicTimer(PollInterval, time);
        var recheckAt = time.GetUtcNow() + auth.Value.TokenRecheckInterval;
        do
        {
            if (time.GetUtcNow() >= recheckAt)
            {
                if (!await tokens.IsStillValidAsync(caller, cancellationToken))
                {
                    throw new ApiException(StatusCode.Unauthenticated, "The token this watch was opened with was revoked or has expired.");
                }
                recheckAt = time.GetUtcNow() + auth.Value.TokenRecheckInterval;
            }
            await using var db = await contexts.CreateDbContextAsync(cancellationToken);
            var query = selector.Apply(VmService.VisibleVms(db, caller).AsNoTracking());
            query = newest is { } since
                ? query.Where(v => v.UpdatedAt > since - CommitWindow)
                : query.Where(v => v.State != VmStates.Deleted);
            var rows = await query.OrderBy(v => v.UpdatedAt).Take(5000)
                .Select(v => new { Vm = v, NodeName = db.Nodes.Where(n => n.Id == v.NodeId).Select(n => n.Name).FirstOrDefault() })
                .ToListAsync(cancellationToken);
            foreach (var row in rows)
            {
                if (sent.TryGetValue(row.Vm.Id, out var at) && at == row.Vm.UpdatedAt)
                {
                    continue;
                }
                sent[row.Vm.Id] = row.Vm.UpdatedAt;
                newest = newest is { } n && n > row.Vm.UpdatedAt ? n : row.Vm.UpdatedAt;
                yield return ApiMapping.ToProto(row.Vm, row.NodeName);
            }
            newest ??= time.GetUtcNow();
        }
        while (await timer.WaitForNextTickAsync(cancellationToken));
    }
}
