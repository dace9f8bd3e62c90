using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Tests;

/// <summary>Filtering and weighing over an in-memory view; no I/O.</summary>
public sealed class SchedulerChooseTests
{
    private static PlacementEngine NewScheduler(string policy = "spread")
    {
        var options = Options.Create(new SchedulerOptions { Policy = policy });
        return new([new NodeUpFilter(), new ResourceFitFilter()], [new ResourceWeigher(options)], options);
    }

    private static NodeCapacity Node(string name, long vcpuUsed, long memoryUsed, string state = "UP", bool schedulable = true, double cpuRatio = 1.0)
        => new(Guid.NewGuid(), name, $"http://{name}:7070", state, schedulable, "zone-a", [], 1,
            new Dictionary<string, ResourceInventory>
            {
                ["VCPU"] = new(8, 0, cpuRatio, 1, 8, 1),
                ["MEMORY_MB"] = new(16384, 1024, 1.0, 1, 16384, 1),
                ["DISK_GB"] = new(100, 0, 1.0, 1, 100, 1),
            },
            new Dictionary<string, long> { ["VCPU"] = vcpuUsed, ["MEMORY_MB"] = memoryUsed });

    [Fact]
    public void Spread_picks_the_emptiest_node_and_pack_the_fullest_that_fits()
    {
        NodeCapacity[] nodes = [Node("busy", 6, 12000), Node("idle", 0, 0), Node("half", 4, 7000)];
        var request = new ResourceRequest(2, 2048, 10);

        Assert.Equal("idle", NewScheduler("spread").Choose(nodes, request).Node!.Name);
        Assert.Equal("busy", NewScheduler("pack").Choose(nodes, request).Node!.Name);
    }

    [Fact]
    public void Reserved_memory_and_the_allocation_ratio_bound_what_fits()
    {
        var scheduler = NewScheduler();
        // 16384 total - 1024 reserved - 14000 used = 1360 free.
        Assert.Null(scheduler.Choose([Node("n", 0, 14000)], new ResourceRequest(1, 2048, 0)).Node);
        Assert.NotNull(scheduler.Choose([Node("n", 0, 13000)], new ResourceRequest(1, 2048, 0)).Node);
        // 8 vCPUs at ratio 4 hold 32.
        Assert.NotNull(scheduler.Choose([Node("n", 30, 0, cpuRatio: 4)], new ResourceRequest(2, 512, 0)).Node);
        Assert.Null(scheduler.Choose([Node("n", 31, 0, cpuRatio: 4)], new ResourceRequest(2, 512, 0)).Node);
    }

    [Fact]
    public void A_failure_counts_rejections_per_filter_and_names_the_nearest_miss()
    {
        NodeCapacity[] nodes = [Node("down", 0, 0, state: "DOWN"), Node("closed", 0, 0, schedulable: false), Node("full", 8, 0)];

        var (node, failure) = NewScheduler().Choose(nodes, new ResourceRequest(2, 1024, 0));

        Assert.Null(node);
        Assert.Equal(3, failure!.NodesConsidered);
        Assert.Equal(2, failure.RejectedByFilter["node-up"]);
        Assert.Equal(1, failure.RejectedByFilter["resource-fit"]);
        Assert.Equal("node full has 0 VCPU free, 2 asked", failure.NearestMiss);
        Assert.Contains("No valid host among 3 nodes", failure.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public void A_request_outside_the_inventory_units_is_rejected()
    {
        var (node, failure) = NewScheduler().Choose([Node("n", 0, 0)], new ResourceRequest(16, 1024, 0));
        Assert.Null(node);
        Assert.Contains("between 1 and 8", failure!.NearestMiss, StringComparison.Ordinal);
    }

    [Fact]
    public void No_nodes_at_all_says_so()
    {
        var (_, failure) = NewScheduler().Choose([], new ResourceRequest(1, 512, 0));
        Assert.Equal("No valid host: no node is registered.", failure!.Summary);
    }
}
