using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Tests;

/// <summary>Each filter and weigher over an in-memory view; no I/O.</summary>
public sealed class PlacementEngineTests
{
    private static PlacementEngine Engine(string policy = "spread", int maxFeasible = 0, Dictionary<string, double>? weights = null)
    {
        var options = Options.Create(new SchedulerOptions { Policy = policy, MaxFeasibleNodes = maxFeasible, Weights = weights ?? [] });
        return new PlacementEngine(
            [new ResourceFitFilter(), new NodeUpFilter(), new AvailabilityZoneFilter(), new AggregateFilter(), new HypervisorFilter(), new TraitsFilter(), new ServerGroupFilter()],
            [new ResourceWeigher(options), new FragmentationWeigher(), new ServerGroupSoftWeigher()],
            options);
    }

    private static NodeCapacity Node(string name, long vcpuUsed = 0, long memoryUsed = 0, string zone = "az1", string[]? traits = null,
        string[]? aggregates = null, string hypervisor = "qemu", long vcpus = 8, long memoryMb = 16384)
        => new(Guid.NewGuid(), name, $"http://{name}:7070", "UP", true, zone, traits ?? [], 1,
            new Dictionary<string, ResourceInventory>
            {
                ["VCPU"] = new(vcpus, 0, 1.0, 1, vcpus, 1),
                ["MEMORY_MB"] = new(memoryMb, 0, 1.0, 1, memoryMb, 1),
            },
            new Dictionary<string, long> { ["VCPU"] = vcpuUsed, ["MEMORY_MB"] = memoryUsed })
        {
            Hypervisor = hypervisor,
            Aggregates = aggregates ?? [],
        };

    private static PlacementRequest Request(int vcpus = 1, long memoryMb = 1024, PlacementConstraints? constraints = null, ServerGroupState? group = null)
        => new(new ResourceRequest(vcpus, memoryMb, 0), constraints, group);

    private static ServerGroupState Group(string policy, int max, params NodeCapacity[] membersOn)
    {
        var perNode = new Dictionary<Guid, int>();
        foreach (var node in membersOn)
        {
            perNode[node.NodeId] = perNode.GetValueOrDefault(node.NodeId) + 1;
        }
        return new ServerGroupState(Guid.NewGuid(), "web", policy, max, membersOn.Length, perNode);
    }

    [Fact]
    public void Zone_filter_keeps_only_the_asked_zone_and_says_where_the_others_are()
    {
        NodeCapacity[] nodes = [Node("a", zone: "az1"), Node("b", zone: "az2")];

        var outcome = Engine().Evaluate(nodes, Request(constraints: new() { AvailabilityZone = "az2" }));
        var none = Engine().Evaluate(nodes, Request(constraints: new() { AvailabilityZone = "az9" }));

        Assert.Equal("b", outcome.Node!.Name);
        Assert.Equal(1, outcome.RejectedByFilter["availability-zone"]);
        Assert.Null(none.Node);
        Assert.Equal("node a is in zone az1, not az9", none.ExampleByFilter["availability-zone"]);
    }

    [Fact]
    public void Aggregate_filter_keeps_only_members_of_the_aggregate()
    {
        NodeCapacity[] nodes = [Node("plain"), Node("gpu", aggregates: ["gpu-hosts"])];

        var outcome = Engine().Evaluate(nodes, Request(constraints: new() { Aggregate = "gpu-hosts" }));

        Assert.Equal("gpu", outcome.Node!.Name);
        Assert.Equal(1, outcome.RejectedByFilter["aggregate"]);
    }

    [Fact]
    public void Hypervisor_filter_keeps_only_compatible_nodes()
    {
        NodeCapacity[] nodes = [Node("q", hypervisor: "qemu"), Node("f", hypervisor: "fake")];

        var outcome = Engine().Evaluate(nodes, Request(constraints: new() { Hypervisor = "fake" }));

        Assert.Equal("f", outcome.Node!.Name);
        Assert.Equal("node q runs qemu, not fake", outcome.ExampleByFilter["hypervisor"]);
    }

    [Fact]
    public void Traits_filter_needs_every_required_trait_and_no_forbidden_one()
    {
        NodeCapacity[] nodes = [Node("ssd", traits: ["SSD"]), Node("ssd-gpu", traits: ["SSD", "GPU"]), Node("hdd", traits: ["HDD"])];
        var constraints = new PlacementConstraints { RequiredTraits = ["SSD"], ForbiddenTraits = ["GPU"] };

        var outcome = Engine().Evaluate(nodes, Request(constraints: constraints));

        Assert.Equal("ssd", outcome.Node!.Name);
        Assert.Equal(2, outcome.RejectedByFilter["traits"]);
        var explained = Engine().Explain(nodes[1], Request(constraints: constraints));
        Assert.False(explained.Eligible);
        Assert.Equal("node ssd-gpu has forbidden trait GPU", explained.Checks.Single(c => c.Filter == "traits").Rejection);
    }

    [Fact]
    public void Hard_anti_affinity_avoids_nodes_with_members_and_affinity_sticks_to_them()
    {
        NodeCapacity[] nodes = [Node("a"), Node("b"), Node("c")];

        var anti = Engine().Evaluate(nodes, Request(group: Group(ServerGroupPolicies.AntiAffinity, 10, nodes[0], nodes[1])));
        var affinity = Engine().Evaluate(nodes, Request(group: Group(ServerGroupPolicies.Affinity, 10, nodes[1])));
        var firstMember = Engine().Evaluate(nodes, Request(group: Group(ServerGroupPolicies.Affinity, 10)));

        Assert.Equal("c", anti.Node!.Name);
        Assert.Equal(2, anti.RejectedByFilter["server-group"]);
        Assert.Equal("b", affinity.Node!.Name);
        Assert.NotNull(firstMember.Node);
    }

    [Fact]
    public void A_full_server_group_takes_no_member_anywhere()
    {
        NodeCapacity[] nodes = [Node("a"), Node("b")];

        var outcome = Engine().Evaluate(nodes, Request(group: Group(ServerGroupPolicies.SoftAffinity, 1, nodes[0])));

        Assert.Null(outcome.Node);
        Assert.Equal(2, outcome.RejectedByFilter["server-group"]);
        Assert.Equal("server group web is full (1 of 1 members)", outcome.Failure!.NearestMiss);
    }

    [Fact]
    public void Soft_policies_weigh_towards_or_away_from_members_but_never_refuse()
    {
        NodeCapacity[] nodes = [Node("a"), Node("b")];

        var together = Engine().Evaluate(nodes, Request(group: Group(ServerGroupPolicies.SoftAffinity, 10, nodes[1], nodes[1])));
        var apart = Engine().Evaluate(nodes, Request(group: Group(ServerGroupPolicies.SoftAntiAffinity, 10, nodes[1])));
        var onlyMemberNode = Engine().Evaluate([nodes[1]], Request(group: Group(ServerGroupPolicies.SoftAntiAffinity, 10, nodes[1])));

        Assert.Equal("b", together.Node!.Name);
        Assert.Equal("a", apart.Node!.Name);
        Assert.Equal("b", onlyMemberNode.Node!.Name);
    }

    [Fact]
    public void Pack_takes_the_tightest_fit_and_spread_the_emptiest()
    {
        NodeCapacity[] nodes = [Node("empty"), Node("half", 4, 8192), Node("nearly-full", 7, 14336)];

        Assert.Equal("nearly-full", Engine("pack").Evaluate(nodes, Request()).Node!.Name);
        Assert.Equal("empty", Engine("spread").Evaluate(nodes, Request()).Node!.Name);
    }

    [Fact]
    public void Fragmentation_cost_prefers_the_node_left_balanced()
    {
        // Same free CPU; "lopsided" would be left with CPU and no memory.
        NodeCapacity[] nodes = [Node("lopsided", 0, 12288), Node("balanced", 0, 0)];
        var onlyFragmentation = new Dictionary<string, double> { ["resources"] = 0, ["fragmentation"] = 1 };

        var outcome = Engine("pack", weights: onlyFragmentation).Evaluate(nodes, Request(4, 4096));

        Assert.Equal("balanced", outcome.Node!.Name);
        var explained = Engine("pack", weights: onlyFragmentation).Explain(nodes[0], Request(4, 4096));
        Assert.Equal(0, explained.Weights["resources"]);
        Assert.Equal(0.5, explained.Weights["fragmentation"], 3);
    }

    [Fact]
    public void The_nearest_miss_is_the_node_short_by_the_least()
    {
        NodeCapacity[] nodes = [Node("far", 8, 0), Node("near", 0, 15872), Node("down", 0, 0) with { State = "DOWN" }];

        var failure = Engine().Evaluate(nodes, Request(2, 1024)).Failure!;

        Assert.Equal("near", failure.NearestMissNode);
        Assert.Equal("node near has 512 MEMORY_MB free, 1024 asked", failure.NearestMiss);
        Assert.Equal(2, failure.RejectedByFilter["resource-fit"]);
        Assert.Equal(1, failure.RejectedByFilter["node-up"]);
        Assert.Equal("No valid host among 3 nodes: 2 rejected by resource-fit, 1 rejected by node-up. Nearest miss: node near has 512 MEMORY_MB free, 1024 asked.", failure.Summary);
    }

    [Fact]
    public void Filters_run_cheapest_first_whatever_their_registration_order()
    {
        Assert.Equal("node-up", Engine().FilterNames[0]);
        Assert.Equal("resource-fit", Engine().FilterNames[^1]);
    }

    [Fact]
    public void MaxFeasibleNodes_stops_early_and_successive_passes_start_elsewhere()
    {
        var nodes = Enumerable.Range(0, 100).Select(i => Node($"n{i}")).ToArray();
        var engine = Engine(maxFeasible: 5);

        var first = engine.Evaluate(nodes, Request());
        var second = engine.Evaluate(nodes, Request());
        var full = engine.Evaluate(nodes, Request(), scanAll: true);

        Assert.Equal(5, first.NodesConsidered);
        Assert.Equal(5, first.Feasible);
        Assert.NotEqual(first.Node!.Name, second.Node!.Name);
        Assert.Equal(100, full.NodesConsidered);
    }

    [Fact]
    public void Explain_reports_every_filter_not_only_the_first_refusal()
    {
        var node = Node("x", 8, 0, zone: "az2") with { State = "DOWN" };

        var explained = Engine().Explain(node, Request(constraints: new() { AvailabilityZone = "az1" }));

        Assert.False(explained.Eligible);
        Assert.Equal(0, explained.Score);
        Assert.Equal(["node x is DOWN", "node x is in zone az2, not az1", "node x has 0 VCPU free, 1 asked"],
            explained.Checks.Where(c => c.Rejection is not null).Select(c => c.Rejection));
    }
}
