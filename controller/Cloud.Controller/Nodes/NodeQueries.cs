using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Operations;
using Cloud.Controller.Scheduling;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Google.Protobuf.WellKnownTypes;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Nodes;

/// <summary>
/// The operator's view of nodes (state, schedulable flag, hypervisor and capacity used per
/// resource class), cordoning (a node taken out of scheduling keeps its VMs) and draining.
/// </summary>
internal sealed class NodeQueries(CapacityLedger ledger, IDbContextFactory<LedgerDbContext> contexts, Scheduler scheduler, OperationStarter operations,
    Trust.RevokedCertificates certificates)
{
    public async Task<ListNodesResponse> ListAsync(Caller caller, CancellationToken cancellationToken)
    {
        RequireOperator(caller, "list nodes");
        var capacities = (await ledger.LoadAsync(cancellationToken)).ToDictionary(c => c.NodeId);
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var nodes = await db.Nodes.AsNoTracking().OrderBy(n => n.Name).ToListAsync(cancellationToken);
        return new ListNodesResponse { Nodes = { nodes.Select(n => ToMessage(n, capacities.GetValueOrDefault(n.Id))) } };
    }

    /// <summary>
    /// Cordons (false) or uncordons (true) a node; doing it twice changes nothing. Every replica
    /// learns of it at once: the change notifies them (NodeChangeNotifications), and this one
    /// checks its view before its next decision.
    /// </summary>
    public async Task<Node> SetSchedulableAsync(Caller caller, SetNodeSchedulableRequest request, CancellationToken cancellationToken)
    {
        RequireOperator(caller, "cordon nodes");
        VmValidation.RequireName(request.Name, "node");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var updated = await db.Nodes.Where(n => n.Name == request.Name)
            .ExecuteUpdateAsync(s => s.SetProperty(n => n.Schedulable, request.Schedulable), cancellationToken);
        if (updated == 0)
        {
            throw ApiException.NotFound("Node", request.Name);
        }
        scheduler.InvalidateAll();
        var node = await db.Nodes.AsNoTracking().SingleAsync(n => n.Name == request.Name, cancellationToken);
        return ToMessage(node, await ledger.LoadNodeAsync(node.Id, cancellationToken));
    }

    /// <summary>
    /// Starts a node.drain (<see cref="DrainNodeHandler"/>). The node is cordoned in the same
    /// transaction, so that nothing new lands on it while it empties; it stays cordoned after.
    /// One drain of a node at a time.
    /// </summary>
    public async Task<Operation> DrainAsync(Caller caller, DrainNodeRequest request, CancellationToken cancellationToken)
    {
        RequireOperator(caller, "drain nodes");
        VmValidation.RequireName(request.Name, "node");
        if (request.MaxParallel is < 0 or > DrainNodeHandler.MaxParallel)
        {
            throw ApiException.Invalid($"max_parallel must be 1 to {DrainNodeHandler.MaxParallel} (0: {DrainNodeHandler.DefaultParallel}).");
        }
        var operation = await operations.StartAsync(caller, OperationKinds.NodeDrain, request, request.IdempotencyKey, request, async (db, _, _) =>
        {
            var node = await db.Nodes.FromSql($"SELECT * FROM nodes WHERE name = {request.Name} FOR UPDATE").SingleOrDefaultAsync(cancellationToken)
                ?? throw ApiException.NotFound("Node", request.Name);
            var target = node.Id.ToString();
            var underWay = await db.Operations.AsNoTracking()
                .Where(o => o.TargetId == target && o.Kind == OperationKinds.NodeDrain && (o.State == OperationStates.Pending || o.State == OperationStates.Running))
                .Select(o => (Guid?)o.Id)
                .FirstOrDefaultAsync(cancellationToken);
            if (underWay is { } drain)
            {
                throw new ApiException(StatusCode.FailedPrecondition, $"Node '{request.Name}' is being drained by operation {drain}.",
                    new Dictionary<string, object?> { ["httpStatus"] = 409, ["operation"] = drain.ToString() });
            }
            node.Schedulable = false;
            return target;
        }, cancellationToken);
        scheduler.InvalidateAll();
        return operation;
    }

    /// <summary>
    /// Removes a node that holds nothing (drain it first) and revokes every certificate it was
    /// issued, so that its agent is refused from the next call on. A node that joined but never
    /// registered has only certificates to revoke.
    /// </summary>
    public async Task<DeleteNodeResponse> DeleteAsync(Caller caller, DeleteNodeRequest request, CancellationToken cancellationToken)
    {
        RequireOperator(caller, "delete nodes");
        VmValidation.RequireName(request.Name, "node");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var node = await db.Nodes.AsNoTracking().SingleOrDefaultAsync(n => n.Name == request.Name, cancellationToken);
        if (node is not null)
        {
            var vms = await db.Vms.CountAsync(v => v.NodeId == node.Id, cancellationToken);
            var held = await db.Allocations.AnyAsync(a => a.NodeId == node.Id, cancellationToken);
            if (vms > 0 || held)
            {
                throw new ApiException(StatusCode.FailedPrecondition,
                    $"Node '{request.Name}' still holds {vms} VM(s){(held && vms == 0 ? " and capacity claimed by a move" : "")}: drain it first (cloudctl node drain {request.Name}).",
                    new Dictionary<string, object?> { ["httpStatus"] = 409 });
            }
            await db.Nodes.Where(n => n.Id == node.Id).ExecuteDeleteAsync(cancellationToken);
            scheduler.InvalidateAll();
        }
        var revoked = await certificates.RevokeNodeAsync(request.Name, cancellationToken);
        if (node is null && revoked == 0)
        {
            throw ApiException.NotFound("Node", request.Name);
        }
        return new DeleteNodeResponse { RevokedCertificates = revoked };
    }

    private static void RequireOperator(Caller caller, string what)
    {
        if (!caller.IsOperator)
        {
            throw new ApiException(StatusCode.PermissionDenied, $"Only operators {what}.");
        }
    }

    private static Node ToMessage(NodeEntity node, NodeCapacity? capacity)
    {
        var message = new Node
        {
            Id = node.Id.ToString(),
            Name = node.Name,
            Address = node.Address,
            State = node.State,
            Schedulable = node.Schedulable,
            Hypervisor = node.Hypervisor,
            Accelerator = node.Accelerator,
            LastHeartbeat = node.LastHeartbeatAt is { } at ? Timestamp.FromDateTimeOffset(at) : null,
        };
        if (capacity is not null)
        {
            foreach (var (resourceClass, inventory) in capacity.Inventories.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                message.Resources.Add(new ResourceUsage
                {
                    ResourceClass = resourceClass,
                    Total = inventory.Total,
                    Reserved = inventory.Reserved,
                    AllocationRatio = inventory.AllocationRatio,
                    Used = capacity.Used.GetValueOrDefault(resourceClass),
                });
            }
        }
        return message;
    }
}
