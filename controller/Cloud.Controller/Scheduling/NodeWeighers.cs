using Cloud.Controller.Data;

namespace Cloud.Controller.Scheduling;

/// <summary>
/// Scores a node that passed every filter, from 0 (worst) to 1 (best). The engine adds up the
/// scores times each weigher's multiplier (<see cref="SchedulerOptions.Weights"/>, by name) and
/// takes the highest. Register more with <c>services.AddSingleton&lt;INodeWeigher, T&gt;()</c>.
/// </summary>
internal interface INodeWeigher
{
    string Name { get; }

    /// <summary>The multiplier when the options name none.</summary>
    double DefaultMultiplier { get; }

    double Weigh(NodeCapacity node, PlacementRequest request);
}

/// <summary>
/// Spread (most free capacity after placing, the default) or pack (least: best fit, which
/// empties other nodes for large VMs and for power saving). Averages CPU and memory.
/// </summary>
internal sealed class ResourceWeigher(Microsoft.Extensions.Options.IOptions<SchedulerOptions> options) : INodeWeigher
{
    // Read on first use, not in the constructor: validating the options lists the weighers.
    private readonly Lazy<bool> _pack = new(() => options.Value.Policy == "pack");

    public string Name => "resources";

    public double DefaultMultiplier => 1.0;

    public double Weigh(NodeCapacity node, PlacementRequest request)
    {
        var free = (Capacity.FreeFractionAfter(node, ResourceClasses.Vcpu, request.Resources.Vcpus)
            + Capacity.FreeFractionAfter(node, ResourceClasses.MemoryMb, request.Resources.MemoryMb)) / 2;
        return _pack.Value ? 1 - free : free;
    }
}

/// <summary>
/// The cost of fragmentation: a node left with much CPU and no memory (or the reverse) strands
/// what is left, since no VM can use it. Scores 1 when the node's free CPU and memory
/// fractions stay equal after placing, 0 when one is empty and the other full.
/// </summary>
internal sealed class FragmentationWeigher : INodeWeigher
{
    public string Name => "fragmentation";

    public double DefaultMultiplier => 0.5;

    public double Weigh(NodeCapacity node, PlacementRequest request)
        => 1 - Math.Abs(Capacity.FreeFractionAfter(node, ResourceClasses.Vcpu, request.Resources.Vcpus)
            - Capacity.FreeFractionAfter(node, ResourceClasses.MemoryMb, request.Resources.MemoryMb));
}

/// <summary>
/// Soft server-group policies: soft-affinity prefers the nodes that hold most members,
/// soft-anti-affinity the ones that hold fewest. Weighs heavily by default, since a soft
/// policy is still what the tenant asked for.
/// </summary>
internal sealed class ServerGroupSoftWeigher : INodeWeigher
{
    public string Name => "server-group";

    public double DefaultMultiplier => 10.0;

    public double Weigh(NodeCapacity node, PlacementRequest request)
    {
        if (request.Group is not { } group || group.Members == 0)
        {
            return 0.5;
        }
        var share = (double)group.MembersOn(node.NodeId) / group.Members;
        return group.Policy switch
        {
            ServerGroupPolicies.SoftAffinity => share,
            ServerGroupPolicies.SoftAntiAffinity => 1 - share,
            _ => 0.5,
        };
    }
}
