using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Cloud.Grpc;
using Google.Protobuf.WellKnownTypes;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Nodes;

/// <summary>
/// The operator's view of nodes (state, schedulable flag, hypervisor and capacity used per
/// resource class), and cordoning: a node taken out of scheduling keeps its VMs.
/// </summary>
internal sealed class NodeQueries(CapacityLedger ledger, IDbContextFactory<LedgerDbContext> contexts, Scheduler scheduler)
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
