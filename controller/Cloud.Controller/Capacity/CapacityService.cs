using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Cloud.Controller.Capacity;

/// <summary>
/// Capacity planning for operators (PlanCapacity): what is used and free on the nodes that take
/// VMs, what a drain or the loss of zones would do (<see cref="CapacityPlanner"/>), how many more
/// of each flavor fit, and when each resource runs out at the growth of the last days.
/// </summary>
internal sealed class CapacityService(
    IDbContextFactory<LedgerDbContext> contexts,
    NpgsqlDataSource dataSource,
    Scheduler scheduler,
    PlacementStore groups,
    CapacityPlanner planner,
    TimeProvider time)
{
    public const int DefaultTrendDays = 7;
    public const int MaxTrendDays = 365;
    private const int MaxNames = 1000;

    public async Task<CapacityPlan> PlanAsync(Caller caller, PlanCapacityRequest request, CancellationToken cancellationToken)
    {
        caller.RequireOperator("plan capacity");
        if (request.TrendDays is < 0 or > MaxTrendDays)
        {
            throw ApiException.Invalid($"trend_days must be 1 to {MaxTrendDays} (0: {DefaultTrendDays}), not {request.TrendDays}.");
        }
        if (request.DrainNodes.Count + request.LoseZones.Count + request.Flavors.Count > MaxNames)
        {
            throw ApiException.Invalid($"At most {MaxNames} nodes, zones and flavors in all.");
        }
        var nodes = await scheduler.CurrentNodesAsync(cancellationToken);
        var drained = new HashSet<Guid>();
        foreach (var name in request.DrainNodes)
        {
            VmValidation.RequireName(name, "node");
            drained.Add((nodes.FirstOrDefault(n => n.Name == name) ?? throw ApiException.NotFound("Node", name)).NodeId);
        }
        var lostZones = new HashSet<string>(StringComparer.Ordinal);
        foreach (var zone in request.LoseZones)
        {
            lostZones.Add(nodes.Any(n => n.AvailabilityZone == zone) ? zone : throw ApiException.NotFound("Availability zone", zone));
        }
        var flavors = await FlavorsAsync(request.Flavors, cancellationToken);

        var leaving = nodes.Where(n => drained.Contains(n.NodeId) || lostZones.Contains(n.AvailabilityZone)).ToDictionary(n => n.NodeId);
        var displaced = await DisplacedAsync(leaving, cancellationToken);
        var planned = planner.Plan(nodes, drained, lostZones, displaced);

        var trendDays = request.TrendDays == 0 ? DefaultTrendDays : request.TrendDays;
        var growth = await GrowthPerDayAsync(trendDays, cancellationToken);
        var plan = new CapacityPlan
        {
            Nodes = planned.Nodes.Count,
            Displaced = displaced.Count,
            PlacedAgain = planned.Replacements.Count(r => r.Node is not null),
            TrendDays = trendDays,
        };
        foreach (var resourceClass in ResourceClasses.All)
        {
            var capacity = planned.Nodes.Sum(n => n.Inventories.TryGetValue(resourceClass, out var inventory) ? inventory.Capacity : 0);
            var used = planned.Nodes.Sum(n => n.Used.GetValueOrDefault(resourceClass));
            var resource = new ResourceCapacity
            {
                ResourceClass = resourceClass,
                Capacity = capacity,
                Used = used,
                Free = Math.Max(0, capacity - used),
                GrowthPerDay = Math.Round(growth.GetValueOrDefault(resourceClass), 3),
            };
            if (resource.GrowthPerDay > 0)
            {
                resource.DaysUntilFull = Math.Round(resource.Free / resource.GrowthPerDay, 1);
            }
            plan.Resources.Add(resource);
        }
        plan.Unplaced.Add(planned.Replacements.Where(r => r.Node is null)
            .Select(r => new UnplacedVm { Id = r.Vm.Id.ToString(), Name = r.Vm.Name, Node = r.Vm.NodeName, Reason = r.Reason ?? "" }));
        plan.Fits.Add(flavors.Select(f => new FlavorFit
        {
            Flavor = f.Name,
            Count = (int)Math.Min(int.MaxValue, CapacityPlanner.Fits(planned.Nodes, new PlacementRequest(new ResourceRequest(f.Vcpus, f.MemoryMb, f.DiskGb)))),
        }));
        return plan;
    }

    private async Task<List<FlavorEntity>> FlavorsAsync(IReadOnlyCollection<string> names, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        if (names.Count == 0)
        {
            return await db.Flavors.AsNoTracking().OrderBy(f => f.Vcpus).ThenBy(f => f.MemoryMb).ThenBy(f => f.Name).ToListAsync(cancellationToken);
        }
        var found = await db.Flavors.AsNoTracking().Where(f => names.Contains(f.Name)).ToDictionaryAsync(f => f.Name, cancellationToken);
        return [.. names.Distinct().Select(name => found.GetValueOrDefault(name) ?? throw ApiException.NotFound("Flavor", name))];
    }

    /// <summary>
    /// The VMs on the nodes that leave, each with its hints and its server group as the scheduler
    /// reads them. A group's members that leave no longer count on their node: they are placed again.
    /// </summary>
    private async Task<List<DisplacedVm>> DisplacedAsync(IReadOnlyDictionary<Guid, NodeCapacity> leaving, CancellationToken cancellationToken)
    {
        if (leaving.Count == 0)
        {
            return [];
        }
        var nodeIds = leaving.Keys.ToList();
        List<VmEntity> vms;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            vms = await db.Vms.AsNoTracking()
                .Where(v => v.NodeId != null && nodeIds.Contains(v.NodeId.Value) && v.State != VmStates.Deleted)
                .OrderBy(v => v.CreatedAt)
                .ToListAsync(cancellationToken);
        }
        var groupStates = new Dictionary<Guid, ServerGroupState?>();
        var displaced = new List<DisplacedVm>(vms.Count);
        foreach (var vm in vms)
        {
            // A VM whose hints no longer parse is placed without them, as a plan should not fail on one VM.
            var constraints = PlacementHints.TryParse(vm.Labels, out var parsed, out _) ? parsed : PlacementConstraints.None;
            ServerGroupState? group = null;
            if (constraints.ServerGroupId is { } groupId)
            {
                if (!groupStates.TryGetValue(groupId, out group))
                {
                    group = await LoadGroupLessLeaversAsync(groupId, vm.ProjectId, vms, cancellationToken);
                    groupStates[groupId] = group;
                }
            }
            var node = leaving[vm.NodeId!.Value];
            displaced.Add(new DisplacedVm(vm.Id, vm.Name, node.NodeId, node.Name,
                new PlacementRequest(new ResourceRequest(vm.Vcpus, vm.MemoryMb, vm.DiskGb), constraints, group)));
        }
        return displaced;
    }

    private async Task<ServerGroupState?> LoadGroupLessLeaversAsync(Guid groupId, string projectId, List<VmEntity> leavers, CancellationToken cancellationToken)
    {
        if (await groups.LoadGroupAsync(groupId, cancellationToken) is not { } snapshot || snapshot.ProjectId != projectId)
        {
            return null;
        }
        var perNode = new Dictionary<Guid, int>(snapshot.MembersPerNode);
        var members = snapshot.Members;
        var memberIds = new HashSet<Guid>();
        await using (var command = dataSource.CreateCommand("SELECT consumer_id FROM server_group_members WHERE group_id = $1"))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = groupId });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                memberIds.Add(reader.GetGuid(0));
            }
        }
        foreach (var leaver in leavers.Where(v => memberIds.Contains(v.Id)))
        {
            members--;
            perNode[leaver.NodeId!.Value] = perNode.GetValueOrDefault(leaver.NodeId.Value) - 1;
        }
        return new ServerGroupState(snapshot.Id, snapshot.Name, snapshot.Policy, snapshot.MaxMembers, members, perNode);
    }

    /// <summary>
    /// Net growth per day of what VMs hold, per resource class, over the last <paramref name="days"/>:
    /// what VMs held then against what they hold now, from their creation and deletion times. A
    /// deleted VM counts as held from its creation to its deletion.
    /// </summary>
    private async Task<Dictionary<string, double>> GrowthPerDayAsync(int days, CancellationToken cancellationToken)
    {
        // One scan: each VM adds what it holds now and takes away what it held at the window's start.
        await using var command = dataSource.CreateCommand("""
            SELECT coalesce(sum(vcpus * held), 0)::float8, coalesce(sum(memory_mb * held), 0)::float8, coalesce(sum(disk_gb * held), 0)::float8
              FROM (SELECT vcpus, memory_mb, disk_gb,
                           (CASE WHEN state <> 'DELETED' THEN 1 ELSE 0 END)
                         - (CASE WHEN created_at <= $1 AND (state <> 'DELETED' OR updated_at > $1) THEN 1 ELSE 0 END) AS held
                      FROM vms
                     WHERE (node_id IS NOT NULL OR state = 'DELETED') AND (state <> 'DELETED' OR updated_at > $1)) AS v
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = time.GetUtcNow() - TimeSpan.FromDays(days) });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new Dictionary<string, double>(StringComparer.Ordinal)
        {
            [ResourceClasses.Vcpu] = reader.GetDouble(0) / days,
            [ResourceClasses.MemoryMb] = reader.GetDouble(1) / days,
            [ResourceClasses.DiskGb] = reader.GetDouble(2) / days,
        };
    }
}
