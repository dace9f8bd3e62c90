using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;

namespace Cloud.Controller.Capacity;

/// <summary>A VM that must leave its node in a scenario: what it needs and where it may go.</summary>
internal sealed record DisplacedVm(Guid Id, string Name, Guid NodeId, string NodeName, PlacementRequest Request);

/// <summary>Where a displaced VM would go (<see cref="Node"/>), or why nowhere.</summary>
internal sealed record Replacement(DisplacedVm Vm, NodeCapacity? Node, string? Reason);

/// <summary>The cloud once the scenario happened: the nodes that take VMs, with the displaced VMs placed again.</summary>
internal sealed record PlannedCloud(IReadOnlyList<NodeCapacity> Nodes, IReadOnlyList<Replacement> Replacements);

/// <summary>
/// The what-if of capacity planning, on a copy of the scheduler's view: nodes drained or lost
/// with their zones, and their VMs placed again one by one through the scheduler's own filters
/// and weighers (each placement taking its room before the next is chosen), largest first, as
/// an evacuation that wants to fit everything would go. Nothing is claimed or written.
/// </summary>
internal sealed class CapacityPlanner(PlacementEngine engine)
{
    public const string NoNodeLeft = "No node is left to take it: every node is drained or in a lost zone.";

    public PlannedCloud Plan(IReadOnlyList<NodeCapacity> nodes, IReadOnlySet<Guid> drained, IReadOnlySet<string> lostZones, IReadOnlyList<DisplacedVm> displaced)
    {
        // Drained nodes keep standing but take nothing; lost ones are gone.
        var remaining = nodes.Where(n => !drained.Contains(n.NodeId) && !lostZones.Contains(n.AvailabilityZone)).ToList();
        var position = remaining.Select((node, index) => (node.NodeId, index)).ToDictionary(p => p.NodeId, p => p.index);
        var replacements = new List<Replacement>(displaced.Count);
        foreach (var vm in displaced
            .OrderByDescending(v => v.Request.Resources.MemoryMb)
            .ThenByDescending(v => v.Request.Resources.Vcpus)
            .ThenByDescending(v => v.Request.Resources.DiskGb))
        {
            if (remaining.Count == 0)
            {
                replacements.Add(new Replacement(vm, null, NoNodeLeft));
                continue;
            }
            var outcome = engine.Evaluate(remaining, vm.Request);
            if (outcome.Node is not { } chosen)
            {
                replacements.Add(new Replacement(vm, null, outcome.Failure?.Summary ?? "No node passed the filters."));
                continue;
            }
            remaining[position[chosen.NodeId]] = CapacityView.WithUsage(chosen, [vm.Request]);
            vm.Request.Group?.Add(chosen.NodeId);
            replacements.Add(new Replacement(vm, chosen, null));
        }
        return new PlannedCloud(remaining.Where(TakesVms).ToList(), replacements);
    }

    /// <summary>Up and schedulable: a node whose free room counts.</summary>
    public static bool TakesVms(NodeCapacity node) => node.State == NodeStates.Up && node.Schedulable;

    /// <summary>
    /// How many more VMs of <paramref name="size"/> fit on <paramref name="nodes"/>: on each
    /// node, as many as its scarcest resource allows within its unit rules.
    /// </summary>
    public static long Fits(IEnumerable<NodeCapacity> nodes, PlacementRequest size)
    {
        long total = 0;
        foreach (var node in nodes)
        {
            var onNode = long.MaxValue;
            for (var c = 0; c < size.Classes.Length && onNode > 0; c++)
            {
                var amount = size.Amounts[c];
                if (!node.Inventories.TryGetValue(size.Classes[c], out var inventory)
                    || amount < inventory.MinUnit || amount > inventory.MaxUnit || amount % inventory.StepSize != 0)
                {
                    onNode = 0;
                }
                else if (amount > 0)
                {
                    onNode = Math.Min(onNode, Math.Max(0, node.Free(size.Classes[c])) / amount);
                }
            }
            total += onNode == long.MaxValue ? 0 : onNode;
        }
        return total;
    }
}
