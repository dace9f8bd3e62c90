using Cloud.Controller.Capacity;
using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Tests;

/// <summary>The capacity what-if over an in-memory view, with the scheduler's own filters and weighers; no I/O.</summary>
public sealed class CapacityPlannerTests
{
    private static readonly CapacityPlanner Planner = new(Engine());

    private static PlacementEngine Engine()
    {
        var options = Options.Create(new SchedulerOptions { Policy = "pack" });
        return new PlacementEngine(
            [new ResourceFitFilter(), new NodeUpFilter(), new AvailabilityZoneFilter(), new AggregateFilter(), new HypervisorFilter(), new TraitsFilter(), new ServerGroupFilter()],
            [new ResourceWeigher(options), new FragmentationWeigher(), new ServerGroupSoftWeigher()],
            options);
    }

    private static NodeCapacity Node(string name, string zone = "az1", long vcpuUsed = 0, long memoryUsed = 0, bool schedulable = true)
        => new(Guid.NewGuid(), name, $"http://{name}:7070", "UP", schedulable, zone, [], 1,
            new Dictionary<string, ResourceInventory>
            {
                ["VCPU"] = new(8, 0, 1.0, 1, 8, 1),
                ["MEMORY_MB"] = new(16384, 0, 1.0, 1, 16384, 1),
            },
            new Dictionary<string, long> { ["VCPU"] = vcpuUsed, ["MEMORY_MB"] = memoryUsed })
        {
            Hypervisor = "qemu",
        };

    private static DisplacedVm Vm(string name, NodeCapacity on, int vcpus, long memoryMb, PlacementConstraints? constraints = null, ServerGroupState? group = null)
        => new(Guid.NewGuid(), name, on.NodeId, on.Name, new PlacementRequest(new ResourceRequest(vcpus, memoryMb, 0), constraints, group));

    [Fact]
    public void A_drained_nodes_vms_go_largest_first_and_the_one_that_fits_nowhere_says_why()
    {
        var drained = Node("a", vcpuUsed: 8, memoryUsed: 16384);
        var b = Node("b", vcpuUsed: 2, memoryUsed: 4096);
        var c = Node("c", vcpuUsed: 6, memoryUsed: 4096);
        // 6 vCPUs free on b and 2 on c: the 6-vCPU VM must take b whole, which only largest
        // first guarantees; the second 2-vCPU VM then has nowhere to go.
        DisplacedVm[] vms = [Vm("small-1", drained, 2, 1024), Vm("small-2", drained, 2, 1024), Vm("large", drained, 6, 8192)];

        var planned = Planner.Plan([drained, b, c], new HashSet<Guid> { drained.NodeId }, new HashSet<string>(), vms);

        Assert.Equal(["b", "c"], planned.Nodes.Select(n => n.Name).Order());
        Assert.Equal("b", planned.Replacements.Single(r => r.Vm.Name == "large").Node!.Name);
        var unplaced = Assert.Single(planned.Replacements, r => r.Node is null);
        Assert.StartsWith("small", unplaced.Vm.Name, StringComparison.Ordinal);
        Assert.Contains("resource-fit", unplaced.Reason, StringComparison.Ordinal);
        Assert.Equal(16, planned.Nodes.Sum(n => n.Used["VCPU"]));
    }

    [Fact]
    public void A_lost_zone_takes_its_nodes_and_its_vms_keep_their_own_zone_hint()
    {
        var lost = Node("a", zone: "az1", vcpuUsed: 2, memoryUsed: 2048);
        var sameZone = Node("b", zone: "az1");
        var otherZone = Node("c", zone: "az2");
        DisplacedVm[] vms =
        [
            Vm("anywhere", lost, 1, 1024),
            Vm("pinned", lost, 1, 1024, new PlacementConstraints { AvailabilityZone = "az1" }),
        ];

        var planned = Planner.Plan([lost, sameZone, otherZone], new HashSet<Guid>(), new HashSet<string> { "az1" }, vms);

        Assert.Equal(["c"], planned.Nodes.Select(n => n.Name));
        Assert.Equal("c", planned.Replacements.Single(r => r.Vm.Name == "anywhere").Node!.Name);
        var pinned = planned.Replacements.Single(r => r.Vm.Name == "pinned");
        Assert.Null(pinned.Node);
        Assert.Contains("availability-zone", pinned.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Hard_anti_affinity_holds_among_the_vms_placed_again()
    {
        var drained = Node("a");
        var b = Node("b");
        var c = Node("c");
        // Two members leave a; the group's count on a was already taken off, as the service does.
        var group = new ServerGroupState(Guid.NewGuid(), "web", ServerGroupPolicies.AntiAffinity, 10, 0, []);
        DisplacedVm[] vms = [Vm("web-1", drained, 1, 1024, group: group), Vm("web-2", drained, 1, 1024, group: group), Vm("web-3", drained, 1, 1024, group: group)];

        var planned = Planner.Plan([drained, b, c], new HashSet<Guid> { drained.NodeId }, new HashSet<string>(), vms);

        var placed = planned.Replacements.Where(r => r.Node is not null).Select(r => r.Node!.Name).Order().ToList();
        Assert.Equal(["b", "c"], placed);
        Assert.Contains("server-group", Assert.Single(planned.Replacements, r => r.Node is null).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Fits_counts_whole_vms_by_each_nodes_scarcest_resource_and_skips_nodes_that_take_none()
    {
        NodeCapacity[] nodes =
        [
            Node("cpu-bound", vcpuUsed: 6, memoryUsed: 0),       // 2 vCPUs free: 1 VM of 2/2048
            Node("memory-bound", vcpuUsed: 0, memoryUsed: 12288), // 4096 MB free: 2 VMs
            Node("full", vcpuUsed: 8, memoryUsed: 16384),
        ];
        var size = new PlacementRequest(new ResourceRequest(2, 2048, 0));

        Assert.Equal(3, CapacityPlanner.Fits(nodes, size));
        // Larger than any node's max_unit: none at all.
        Assert.Equal(0, CapacityPlanner.Fits(nodes, new PlacementRequest(new ResourceRequest(16, 1024, 0))));
        Assert.False(CapacityPlanner.TakesVms(Node("cordoned", schedulable: false)));
    }
}
