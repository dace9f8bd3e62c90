using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Contracts.Compute.V1;
using Cloud.Grpc;
using Google.Protobuf.WellKnownTypes;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Nodes;

/// <summary>The operator's view of nodes: state, hypervisor and capacity used per resource class.</summary>
internal sealed class NodeQueries(CapacityLedger ledger, IDbContextFactory<LedgerDbContext> contexts)
{
    public async Task<ListNodesResponse> ListAsync(Caller caller, CancellationToken cancellationToken)
    {
        if (!caller.IsOperator)
        {
            throw new ApiException(StatusCode.PermissionDenied, "Only operators list nodes.");
        }
        var capacities = (await ledger.LoadAsync(cancellationToken)).ToDictionary(c => c.NodeId);
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var nodes = await db.Nodes.AsNoTracking().OrderBy(n => n.Name).ToListAsync(cancellationToken);
        var response = new ListNodesResponse();
        foreach (var node in nodes)
        {
            var message = new Node
            {
                Id = node.Id.ToString(),
                Name = node.Name,
                Address = node.Address,
                State = node.State,
                Hypervisor = node.Hypervisor,
                Accelerator = node.Accelerator,
                LastHeartbeat = node.LastHeartbeatAt is { } at ? Timestamp.FromDateTimeOffset(at) : null,
            };
            if (capacities.TryGetValue(node.Id, out var capacity))
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
            response.Nodes.Add(message);
        }
        return response;
    }
}
