using Cloud.Controller.Data;
using Cloud.Controller.Quotas;
using Cloud.Controller.Scheduling;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Cloud.Controller.Vms;

/// <summary>A destination chosen and claimed for a move, or why there is none (<see cref="Code"/> and <see cref="Failure"/>).</summary>
internal sealed record TargetChoice(NodeEntity? Node, StatusCode Code, string? Failure);

/// <summary>
/// Chooses where a VM moves when nobody named the node (a resize that does not fit, a migration
/// with no target), through the scheduler's view and filters with the VM's own constraints, and
/// claims the size there for the move's migration consumer.
/// </summary>
internal sealed class MigrationTargets(
    VmHandlerSupport support,
    NpgsqlDataSource dataSource,
    Scheduler scheduler,
    PlacementEngine engine,
    PlacementStore groups,
    LiveMigration migration)
{
    /// <summary>How many times a destination is chosen again after its claim found it fuller than the scheduler's view.</summary>
    private const int ChoiceAttempts = 4;

    /// <summary>
    /// Chooses a node other than <paramref name="source"/> for <paramref name="size"/> and claims
    /// it for <paramref name="operationId"/>, with <paramref name="alsoInTransaction"/> (a quota
    /// charge) in the claim's transaction; chooses again when the claim finds the node fuller than
    /// the view was.
    /// </summary>
    public async Task<TargetChoice> ChooseAndClaimAsync(Guid operationId, VmEntity vm, NodeEntity source, ResourceRequest size,
        Func<NpgsqlTransaction, Task>? alsoInTransaction, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < ChoiceAttempts; attempt++)
        {
            var (chosen, failure) = await ChooseAsync(vm, source, size, cancellationToken);
            if (chosen is null)
            {
                return new TargetChoice(null, StatusCode.ResourceExhausted, $"No other node can take it: {failure}");
            }
            TargetClaim claim;
            try
            {
                claim = await migration.ClaimTargetAsync(operationId, vm.ProjectId, chosen, size, alsoInTransaction, cancellationToken);
            }
            catch (QuotaExceededException e)
            {
                return new TargetChoice(null, StatusCode.ResourceExhausted, $"Moving it to node {chosen.Name}: {e.Message}");
            }
            if (claim.Claimed)
            {
                return new TargetChoice(chosen, StatusCode.OK, null);
            }
            if (!claim.NoRoom)
            {
                return new TargetChoice(null, StatusCode.Aborted, claim.Refusal);
            }
            // The scheduler's view was behind the ledger: reload it and choose again.
            scheduler.InvalidateAll();
        }
        return new TargetChoice(null, StatusCode.ResourceExhausted, "Every other node chosen was full by the time it was claimed; try again.");
    }

    /// <summary>The node this operation's migration consumer holds capacity on (a run cut short claimed it), or null.</summary>
    public async Task<NodeEntity?> HeldByAsync(Guid operationId, CancellationToken cancellationToken)
    {
        await using var db = await support.Contexts.CreateDbContextAsync(cancellationToken);
        return await db.Nodes.AsNoTracking()
            .Where(n => db.Allocations.Any(a => a.ConsumerId == operationId && a.NodeId == n.Id))
            .FirstOrDefaultAsync(cancellationToken);
    }

    /// <summary>
    /// The VM already counts as a member of its server group on its source; the move takes it
    /// from there, so that place is not held against it.
    /// </summary>
    private async Task<(NodeEntity? Node, string? Failure)> ChooseAsync(VmEntity vm, NodeEntity source, ResourceRequest size, CancellationToken cancellationToken)
    {
        if (!PlacementHints.TryParse(vm.Labels, out var constraints, out var hintError))
        {
            return (null, hintError);
        }
        ServerGroupState? group = null;
        if (constraints.ServerGroupId is { } groupId && await groups.LoadGroupAsync(groupId, cancellationToken) is { } snapshot && snapshot.ProjectId == vm.ProjectId)
        {
            var perNode = new Dictionary<Guid, int>(snapshot.MembersPerNode);
            var members = snapshot.Members;
            if (perNode.TryGetValue(source.Id, out var here) && await IsMemberAsync(groupId, vm.Id, cancellationToken))
            {
                members--;
                perNode[source.Id] = here - 1;
            }
            group = new ServerGroupState(snapshot.Id, snapshot.Name, snapshot.Policy, snapshot.MaxMembers, members, perNode);
        }
        var others = (await scheduler.NodesAsync(cancellationToken)).Where(n => n.NodeId != source.Id).ToList();
        var outcome = engine.Evaluate(others, new PlacementRequest(size, constraints, group));
        if (outcome.Node is not { } chosen)
        {
            return (null, outcome.Failure?.Summary ?? "no node passed the filters.");
        }
        await using var db = await support.Contexts.CreateDbContextAsync(cancellationToken);
        return (await db.Nodes.AsNoTracking().SingleOrDefaultAsync(n => n.Id == chosen.NodeId, cancellationToken), $"node {chosen.Name} went away.");
    }

    private async Task<bool> IsMemberAsync(Guid groupId, Guid vmId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT 1 FROM server_group_members WHERE group_id = $1 AND consumer_id = $2");
        command.Parameters.Add(new NpgsqlParameter { Value = groupId });
        command.Parameters.Add(new NpgsqlParameter { Value = vmId });
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
    }
}
