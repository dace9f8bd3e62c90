using Cloud.Controller.Data;

namespace Cloud.Controller.Scheduling;

/// <summary>A reason a node cannot take a request, or null when it can.</summary>
internal interface INodeFilter
{
    string Name { get; }

    string? Reject(NodeCapacity node, ResourceRequest request);
}

/// <summary>Only nodes that are up (heartbeating) and open for new VMs.</summary>
internal sealed class NodeUpFilter : INodeFilter
{
    public string Name => "node-up";

    public string? Reject(NodeCapacity node, ResourceRequest request)
        => node.State != "UP" ? $"node {node.Name} is {node.State}"
        : !node.Schedulable ? $"node {node.Name} is not schedulable"
        : null;
}

/// <summary>Every resource class fits: free capacity (with ratio and reserved), min/max unit and step.</summary>
internal sealed class ResourceFitFilter : INodeFilter
{
    public string Name => "resource-fit";

    public string? Reject(NodeCapacity node, ResourceRequest request)
    {
        foreach (var (resourceClass, amount) in request.ToAmounts())
        {
            if (!node.Inventories.TryGetValue(resourceClass, out var inventory))
            {
                return $"node {node.Name} has no {resourceClass}";
            }
            if (amount < inventory.MinUnit || amount > inventory.MaxUnit || amount % inventory.StepSize != 0)
            {
                return $"node {node.Name} takes {resourceClass} in units of {inventory.StepSize} between {inventory.MinUnit} and {inventory.MaxUnit}, not {amount}";
            }
            var free = node.Free(resourceClass);
            if (free < amount)
            {
                return $"node {node.Name} has {free} {resourceClass} free, {amount} asked";
            }
        }
        return null;
    }
}
