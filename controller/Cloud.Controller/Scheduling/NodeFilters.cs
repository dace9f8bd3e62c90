using Cloud.Controller.Data;

namespace Cloud.Controller.Scheduling;

/// <summary>
/// A reason a node cannot take a request, or null when it can. Filters run in
/// <see cref="Order"/>: cheap and coarse first, resource fit last, so that the node that got
/// furthest is the nearest miss. Register more with <c>services.AddSingleton&lt;INodeFilter, T&gt;()</c>.
/// </summary>
internal interface INodeFilter
{
    string Name { get; }

    int Order { get; }

    string? Reject(NodeCapacity node, PlacementRequest request);
}

/// <summary>Only nodes that are up (heartbeating) and open for new VMs.</summary>
internal sealed class NodeUpFilter : INodeFilter
{
    public string Name => "node-up";

    public int Order => 0;

    public string? Reject(NodeCapacity node, PlacementRequest request)
        => node.State != "UP" ? $"node {node.Name} is {node.State}"
        : !node.Schedulable ? $"node {node.Name} is not schedulable"
        : null;
}

/// <summary>Only nodes of the requested availability zone.</summary>
internal sealed class AvailabilityZoneFilter : INodeFilter
{
    public string Name => "availability-zone";

    public int Order => 10;

    public string? Reject(NodeCapacity node, PlacementRequest request)
        => request.Constraints.AvailabilityZone is { } zone && !string.Equals(node.AvailabilityZone, zone, StringComparison.Ordinal)
            ? $"node {node.Name} is in zone {node.AvailabilityZone}, not {zone}"
            : null;
}

/// <summary>Only nodes in the requested host aggregate.</summary>
internal sealed class AggregateFilter : INodeFilter
{
    public string Name => "aggregate";

    public int Order => 20;

    public string? Reject(NodeCapacity node, PlacementRequest request)
    {
        if (request.Constraints.Aggregate is not { } aggregate)
        {
            return null;
        }
        foreach (var name in node.Aggregates)
        {
            if (string.Equals(name, aggregate, StringComparison.Ordinal))
            {
                return null;
            }
        }
        return $"node {node.Name} is not in aggregate {aggregate}";
    }
}

/// <summary>Only nodes with the requested hypervisor: a guest built for one does not run on another.</summary>
internal sealed class HypervisorFilter : INodeFilter
{
    public string Name => "hypervisor";

    public int Order => 30;

    public string? Reject(NodeCapacity node, PlacementRequest request)
        => request.Constraints.Hypervisor is { } hypervisor && !string.Equals(node.Hypervisor, hypervisor, StringComparison.Ordinal)
            ? $"node {node.Name} runs {node.Hypervisor}, not {hypervisor}"
            : null;
}

/// <summary>Nodes with every required trait and none of the forbidden ones.</summary>
internal sealed class TraitsFilter : INodeFilter
{
    public string Name => "traits";

    public int Order => 40;

    public string? Reject(NodeCapacity node, PlacementRequest request)
    {
        foreach (var trait in request.Constraints.RequiredTraits)
        {
            if (!Has(node, trait))
            {
                return $"node {node.Name} lacks required trait {trait}";
            }
        }
        foreach (var trait in request.Constraints.ForbiddenTraits)
        {
            if (Has(node, trait))
            {
                return $"node {node.Name} has forbidden trait {trait}";
            }
        }
        return null;
    }

    private static bool Has(NodeCapacity node, string trait)
    {
        foreach (var t in node.Traits)
        {
            if (string.Equals(t, trait, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }
}

/// <summary>
/// Hard server-group policies and member limits: affinity keeps members on the node the group
/// already uses, anti-affinity keeps them off nodes that hold one. Soft policies are weighers.
/// </summary>
internal sealed class ServerGroupFilter : INodeFilter
{
    public string Name => "server-group";

    public int Order => 50;

    public string? Reject(NodeCapacity node, PlacementRequest request)
    {
        if (request.Group is not { } group)
        {
            return null;
        }
        if (group.Members >= group.MaxMembers)
        {
            return $"server group {group.Name} is full ({group.Members} of {group.MaxMembers} members)";
        }
        return group.Policy switch
        {
            ServerGroupPolicies.AntiAffinity when group.MembersOn(node.NodeId) > 0
                => $"node {node.Name} already holds a member of anti-affinity group {group.Name}",
            ServerGroupPolicies.Affinity when group.Members > 0 && group.MembersOn(node.NodeId) == 0
                => $"node {node.Name} holds no member of affinity group {group.Name}",
            _ => null,
        };
    }
}

/// <summary>Every resource class fits: free capacity (with ratio and reserved), min/max unit and step.</summary>
internal sealed class ResourceFitFilter : INodeFilter
{
    public string Name => "resource-fit";

    public int Order => 1000;

    public string? Reject(NodeCapacity node, PlacementRequest request)
    {
        for (var i = 0; i < request.Classes.Length; i++)
        {
            var resourceClass = request.Classes[i];
            var amount = request.Amounts[i];
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
