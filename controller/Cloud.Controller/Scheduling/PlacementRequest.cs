using Cloud.Controller.Data;

namespace Cloud.Controller.Scheduling;

/// <summary>Where a VM may go, beyond the resources it needs. Empty means anywhere.</summary>
internal sealed record PlacementConstraints
{
    public static readonly PlacementConstraints None = new();

    /// <summary>Only nodes of this availability zone.</summary>
    public string? AvailabilityZone { get; init; }

    /// <summary>Only nodes in this host aggregate.</summary>
    public string? Aggregate { get; init; }

    /// <summary>Only nodes of this hypervisor (qemu, fake...).</summary>
    public string? Hypervisor { get; init; }

    /// <summary>Nodes must have every one of these traits.</summary>
    public IReadOnlyList<string> RequiredTraits { get; init; } = [];

    /// <summary>Nodes must have none of these traits.</summary>
    public IReadOnlyList<string> ForbiddenTraits { get; init; } = [];

    /// <summary>The server group the VM joins.</summary>
    public Guid? ServerGroupId { get; init; }
}

/// <summary>
/// A server group as one placement pass sees it: its policy, its limit, and how many members
/// each node holds. A batch adds its own members as it goes, so that the tenth VM of an
/// anti-affinity batch avoids the nodes of the first nine.
/// </summary>
internal sealed class ServerGroupState(Guid id, string name, string policy, int maxMembers, int members, Dictionary<Guid, int> membersPerNode)
{
    public Guid Id { get; } = id;

    public string Name { get; } = name;

    public string Policy { get; } = policy;

    public int MaxMembers { get; } = maxMembers;

    public int Members { get; private set; } = members;

    public IReadOnlyDictionary<Guid, int> MembersPerNode => membersPerNode;

    public int MembersOn(Guid nodeId) => membersPerNode.GetValueOrDefault(nodeId);

    public void Add(Guid nodeId)
    {
        Members++;
        membersPerNode[nodeId] = membersPerNode.GetValueOrDefault(nodeId) + 1;
    }

    public ServerGroupState Clone() => new(Id, Name, Policy, MaxMembers, Members, new Dictionary<Guid, int>(membersPerNode));
}

/// <summary>
/// One VM to place: its resources (with the per-class amounts computed once, since every
/// filter of every node reads them), its constraints, and its server group's state.
/// </summary>
internal sealed class PlacementRequest
{
    public PlacementRequest(ResourceRequest resources, PlacementConstraints? constraints = null, ServerGroupState? group = null)
    {
        Resources = resources;
        Constraints = constraints ?? PlacementConstraints.None;
        Group = group;
        var amounts = resources.ToAmounts();
        Classes = [.. amounts.Keys];
        Amounts = [.. amounts.Values];
    }

    public ResourceRequest Resources { get; }

    public PlacementConstraints Constraints { get; }

    public ServerGroupState? Group { get; }

    /// <summary>Resource classes asked for, parallel to <see cref="Amounts"/>.</summary>
    public string[] Classes { get; }

    public long[] Amounts { get; }

    public long AmountOf(string resourceClass)
    {
        var index = Array.IndexOf(Classes, resourceClass);
        return index < 0 ? 0 : Amounts[index];
    }

    public PlacementRequest WithGroup(ServerGroupState? group) => new(Resources, Constraints, group);
}

/// <summary>Capacity arithmetic shared by filters and weighers.</summary>
internal static class Capacity
{
    /// <summary>The fraction of a class's capacity that would be free after the request: 0 when full, 1 when empty.</summary>
    public static double FreeFractionAfter(NodeCapacity node, string resourceClass, long amount)
    {
        if (!node.Inventories.TryGetValue(resourceClass, out var inventory))
        {
            return 0;
        }
        var capacity = inventory.Capacity;
        return capacity <= 0 ? 0 : Math.Clamp((double)(node.Free(resourceClass) - amount) / capacity, 0, 1);
    }
}
