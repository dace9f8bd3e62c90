using System.Text.Json;
using System.Text.RegularExpressions;
using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Google.Protobuf.WellKnownTypes;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Cloud.Controller.Placement;

/// <summary>
/// The placement API behind both wires: dry runs and decisions (explainable placement), and the
/// operator's server groups, host aggregates and zones. Every input is checked before anything
/// is written, and a refusal changes nothing.
/// </summary>
internal sealed partial class PlacementService(
    IDbContextFactory<LedgerDbContext> contexts,
    Scheduler scheduler,
    TimeProvider time)
{
    public const int DefaultMaxMembers = 10;
    public const int MaxMembersLimit = 10_000;

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    private static partial Regex DnsLabel();

    public async Task<DryRunResponse> DryRunAsync(Caller caller, DryRunRequest request, CancellationToken cancellationToken)
    {
        caller.RequireOperator("run placement dry runs");
        var placement = await ToRequestAsync(request.Spec ?? throw ApiException.Invalid("spec is required."), cancellationToken);
        var explain = string.IsNullOrEmpty(request.ExplainNode) ? null : request.ExplainNode;
        DryRunResult result;
        try
        {
            result = await scheduler.DryRunAsync(caller.ProjectId, placement, explain, cancellationToken);
        }
        catch (KeyNotFoundException)
        {
            throw ApiException.NotFound("Node", explain!);
        }
        var outcome = result.Outcome;
        var response = new DryRunResponse
        {
            Placeable = result.Failure is null,
            Node = result.Failure is null ? outcome.Node?.Name ?? "" : "",
            NodesConsidered = outcome.NodesConsidered,
            NodesFeasible = outcome.Feasible,
            NearestMiss = result.Failure?.NearestMiss ?? "",
            NearestMissNode = result.Failure?.NearestMissNode ?? "",
            Summary = result.Failure?.Summary ?? $"Would place on {outcome.Node!.Name}: {outcome.Feasible} of {outcome.NodesConsidered} nodes pass the filters.",
            DecisionId = result.DecisionId.ToString(),
        };
        response.Rejections.Add(Rejections(outcome.RejectedByFilter, outcome.ExampleByFilter));
        if (result.Explanation is { } e)
        {
            var explanation = new Contracts.Compute.V1.NodeExplanation { Node = e.Node, Eligible = e.Eligible, Score = e.Score };
            explanation.Checks.Add(e.Checks.Select(c => new FilterVerdict { Filter = c.Filter, Passed = c.Rejection is null, Reason = c.Rejection ?? "" }));
            explanation.Weights.Add(e.Weights.ToDictionary());
            response.Explanation = explanation;
        }
        return response;
    }

    public async Task<PlacementDecision> GetDecisionAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        var decisionId = ParseId(id, "id");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var decision = await Decisions(db, caller).SingleOrDefaultAsync(d => d.Id == decisionId, cancellationToken)
            ?? throw ApiException.NotFound("Placement decision", id);
        return ToMessage(decision);
    }

    public async Task<ListPlacementDecisionsResponse> ListDecisionsAsync(Caller caller, ListPlacementDecisionsRequest request, CancellationToken cancellationToken)
    {
        if (request.PageSize is < 0 or > 1000)
        {
            throw ApiException.Invalid($"page_size must be between 0 and 1000, not {request.PageSize}.");
        }
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var query = Decisions(db, caller);
        if (!string.IsNullOrEmpty(request.ConsumerId))
        {
            var consumer = ParseId(request.ConsumerId, "consumer_id");
            query = query.Where(d => d.ConsumerId == consumer);
        }
        var decisions = await query.OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id)
            .Take(request.PageSize == 0 ? 100 : request.PageSize).ToListAsync(cancellationToken);
        var response = new ListPlacementDecisionsResponse();
        response.Decisions.Add(decisions.Select(ToMessage));
        return response;
    }

    public async Task<ServerGroup> CreateServerGroupAsync(Caller caller, CreateServerGroupRequest request, CancellationToken cancellationToken)
    {
        if (!DnsLabel().IsMatch(request.Name))
        {
            throw ApiException.Invalid($"name '{Truncate(request.Name)}' is invalid: 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit.");
        }
        if (!PlacementHints.IsPolicy(request.Policy))
        {
            throw ApiException.Invalid($"policy '{Truncate(request.Policy)}' is invalid: one of {string.Join(", ", ServerGroupPolicies.All)}.");
        }
        if (request.MaxMembers is < 0 or > MaxMembersLimit)
        {
            throw ApiException.Invalid($"max_members must be between 1 and {MaxMembersLimit} (0 for {DefaultMaxMembers}), not {request.MaxMembers}.");
        }
        var group = new ServerGroupEntity
        {
            Id = Guid.CreateVersion7(time.GetUtcNow()),
            ProjectId = caller.ProjectId,
            Name = request.Name,
            Policy = request.Policy,
            MaxMembers = request.MaxMembers == 0 ? DefaultMaxMembers : request.MaxMembers,
            CreatedAt = time.GetUtcNow(),
        };
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        db.Add(group);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            throw new ApiException(StatusCode.AlreadyExists, $"Server group '{request.Name}' already exists in this project.");
        }
        return ToMessage(group, []);
    }

    public async Task<ServerGroup> GetServerGroupAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        var groupId = ParseId(id, "id");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var group = await Groups(db, caller).SingleOrDefaultAsync(g => g.Id == groupId, cancellationToken) ?? throw ApiException.NotFound("Server group", id);
        return ToMessage(group, await MembersAsync(db, [group.Id], cancellationToken));
    }

    public async Task<ListServerGroupsResponse> ListServerGroupsAsync(Caller caller, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var groups = await Groups(db, caller).OrderBy(g => g.Name).ToListAsync(cancellationToken);
        var members = await MembersAsync(db, [.. groups.Select(g => g.Id)], cancellationToken);
        var response = new ListServerGroupsResponse();
        response.ServerGroups.Add(groups.Select(g => ToMessage(g, members)));
        return response;
    }

    public async Task DeleteServerGroupAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        var groupId = ParseId(id, "id");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var group = await Groups(db, caller).SingleOrDefaultAsync(g => g.Id == groupId, cancellationToken) ?? throw ApiException.NotFound("Server group", id);
        // One statement, so that a member placed meanwhile is counted: a group is only deleted empty.
        var deleted = await db.Set<ServerGroupEntity>()
            .Where(g => g.Id == group.Id && !db.Set<ServerGroupMemberEntity>().Any(m => m.GroupId == g.Id))
            .ExecuteDeleteAsync(cancellationToken);
        if (deleted == 0)
        {
            var count = await db.Set<ServerGroupMemberEntity>().CountAsync(m => m.GroupId == group.Id, cancellationToken);
            throw new ApiException(StatusCode.FailedPrecondition, $"Server group '{group.Name}' still has {count} member(s); delete them first.");
        }
    }

    public async Task<Contracts.Compute.V1.Aggregate> CreateAggregateAsync(Caller caller, CreateAggregateRequest request, CancellationToken cancellationToken)
    {
        caller.RequireOperator("manage host aggregates");
        if (!DnsLabel().IsMatch(request.Name))
        {
            throw ApiException.Invalid($"name '{Truncate(request.Name)}' is invalid: 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit.");
        }
        if (request.AvailabilityZone.Length > 0 && !DnsLabel().IsMatch(request.AvailabilityZone))
        {
            throw ApiException.Invalid($"availability_zone '{Truncate(request.AvailabilityZone)}' is invalid: 1-63 lower-case letters, digits or '-'.");
        }
        var aggregate = new AggregateEntity
        {
            Id = Guid.CreateVersion7(time.GetUtcNow()),
            Name = request.Name,
            AvailabilityZone = request.AvailabilityZone.Length == 0 ? null : request.AvailabilityZone,
            CreatedAt = time.GetUtcNow(),
        };
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        db.Add(aggregate);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            throw new ApiException(StatusCode.AlreadyExists, $"Aggregate '{request.Name}' already exists.");
        }
        return ToMessage(aggregate, []);
    }

    public async Task<ListAggregatesResponse> ListAggregatesAsync(Caller caller, CancellationToken cancellationToken)
    {
        caller.RequireOperator("list host aggregates");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var aggregates = await db.Set<AggregateEntity>().AsNoTracking().OrderBy(a => a.Name).ToListAsync(cancellationToken);
        var nodes = await AggregateNodesAsync(db, null, cancellationToken);
        var response = new ListAggregatesResponse();
        response.Aggregates.Add(aggregates.Select(a => ToMessage(a, nodes.GetValueOrDefault(a.Id) ?? [])));
        return response;
    }

    public async Task<Contracts.Compute.V1.Aggregate> AddAggregateNodeAsync(Caller caller, AggregateNodeRequest request, CancellationToken cancellationToken)
    {
        caller.RequireOperator("manage host aggregates");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var (aggregate, node) = await FindAggregateAndNodeAsync(db, request, cancellationToken);
        if (aggregate.AvailabilityZone is { } zone)
        {
            // A node is in one zone: another aggregate must not put it in a different one.
            var clash = await db.Set<AggregateNodeEntity>().Where(m => m.NodeId == node.Id)
                .Join(db.Set<AggregateEntity>(), m => m.AggregateId, a => a.Id, (m, a) => a)
                .FirstOrDefaultAsync(a => a.AvailabilityZone != null && a.AvailabilityZone != zone, cancellationToken);
            if (clash is not null)
            {
                throw new ApiException(StatusCode.FailedPrecondition,
                    $"Node '{node.Name}' is in aggregate '{clash.Name}' of zone '{clash.AvailabilityZone}'; it cannot also be in zone '{zone}'.");
            }
        }
        if (!await db.Set<AggregateNodeEntity>().AnyAsync(m => m.AggregateId == aggregate.Id && m.NodeId == node.Id, cancellationToken))
        {
            db.Add(new AggregateNodeEntity { AggregateId = aggregate.Id, NodeId = node.Id });
            await db.SaveChangesAsync(cancellationToken);
        }
        scheduler.InvalidateAll();
        return ToMessage(aggregate, (await AggregateNodesAsync(db, aggregate.Id, cancellationToken)).GetValueOrDefault(aggregate.Id) ?? []);
    }

    public async Task<Contracts.Compute.V1.Aggregate> RemoveAggregateNodeAsync(Caller caller, AggregateNodeRequest request, CancellationToken cancellationToken)
    {
        caller.RequireOperator("manage host aggregates");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var (aggregate, node) = await FindAggregateAndNodeAsync(db, request, cancellationToken);
        var removed = await db.Set<AggregateNodeEntity>().Where(m => m.AggregateId == aggregate.Id && m.NodeId == node.Id).ExecuteDeleteAsync(cancellationToken);
        if (removed == 0)
        {
            throw new ApiException(StatusCode.NotFound, $"Node '{node.Name}' is not in aggregate '{aggregate.Name}'.");
        }
        scheduler.InvalidateAll();
        return ToMessage(aggregate, (await AggregateNodesAsync(db, aggregate.Id, cancellationToken)).GetValueOrDefault(aggregate.Id) ?? []);
    }

    public async Task DeleteAggregateAsync(Caller caller, string name, CancellationToken cancellationToken)
    {
        caller.RequireOperator("manage host aggregates");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var aggregate = await db.Set<AggregateEntity>().SingleOrDefaultAsync(a => a.Name == name, cancellationToken) ?? throw ApiException.NotFound("Aggregate", name);
        var deleted = await db.Set<AggregateEntity>()
            .Where(a => a.Id == aggregate.Id && !db.Set<AggregateNodeEntity>().Any(m => m.AggregateId == a.Id))
            .ExecuteDeleteAsync(cancellationToken);
        if (deleted == 0)
        {
            throw new ApiException(StatusCode.FailedPrecondition, $"Aggregate '{name}' still has nodes; remove them first.");
        }
    }

    /// <summary>
    /// The zones, and whether each takes new VMs. Node counts and free capacity are the
    /// operators': a tenant that watched them could follow other tenants' activity and the
    /// cloud's size, so a tenant's answer leaves them out (unset, not zero).
    /// </summary>
    public async Task<ListAvailabilityZonesResponse> ListZonesAsync(Caller caller, CancellationToken cancellationToken)
    {
        var nodes = await scheduler.NodesAsync(cancellationToken);
        var response = new ListAvailabilityZonesResponse();
        foreach (var zone in nodes.GroupBy(n => n.AvailabilityZone).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var up = zone.Where(n => n.State == NodeStates.Up && n.Schedulable).ToList();
            var message = new AvailabilityZone { Name = zone.Key, Available = up.Count > 0 };
            if (caller.IsOperator)
            {
                message.Nodes = zone.Count();
                message.NodesUp = up.Count;
                message.VcpusFree = up.Sum(n => Math.Max(0, n.Free(ResourceClasses.Vcpu)));
                message.MemoryMbFree = up.Sum(n => Math.Max(0, n.Free(ResourceClasses.MemoryMb)));
            }
            response.Zones.Add(message);
        }
        return response;
    }

    private async Task<PlacementRequest> ToRequestAsync(PlacementSpec spec, CancellationToken cancellationToken)
    {
        ResourceRequest resources;
        if (spec.Flavor.Length > 0)
        {
            if (spec.Vcpus != 0 || spec.MemoryMb != 0 || spec.DiskGb != 0)
            {
                throw ApiException.Invalid("Give a flavor or vcpus/memory_mb/disk_gb, not both.");
            }
            await using var db = await contexts.CreateDbContextAsync(cancellationToken);
            var flavor = await db.Flavors.AsNoTracking().SingleOrDefaultAsync(f => f.Name == spec.Flavor, cancellationToken)
                ?? throw ApiException.NotFound("Flavor", spec.Flavor);
            resources = new ResourceRequest(flavor.Vcpus, flavor.MemoryMb, flavor.DiskGb);
        }
        else
        {
            if (spec.Vcpus is < 1 or > 1024)
            {
                throw ApiException.Invalid($"vcpus must be between 1 and 1024, not {spec.Vcpus} (or give a flavor).");
            }
            if (spec.MemoryMb is < 1 or > 16L * 1024 * 1024)
            {
                throw ApiException.Invalid($"memory_mb must be between 1 and {16L * 1024 * 1024}, not {spec.MemoryMb}.");
            }
            if (spec.DiskGb is < 0 or > 1024L * 1024)
            {
                throw ApiException.Invalid($"disk_gb must be between 0 and {1024L * 1024}, not {spec.DiskGb}.");
            }
            resources = new ResourceRequest(spec.Vcpus, spec.MemoryMb, spec.DiskGb);
        }

        // The same rules as the hints a VM carries: one parser, one set of messages.
        var labels = new Dictionary<string, string>();
        void Put(string key, string value)
        {
            if (value.Length > 0)
            {
                labels[key] = value;
            }
        }
        Put(PlacementHints.Zone, spec.AvailabilityZone);
        Put(PlacementHints.Aggregate, spec.Aggregate);
        Put(PlacementHints.Hypervisor, spec.Hypervisor);
        Put(PlacementHints.RequireTraits, string.Join(',', spec.RequiredTraits));
        Put(PlacementHints.ForbidTraits, string.Join(',', spec.ForbiddenTraits));
        Put(PlacementHints.ServerGroup, spec.ServerGroup);
        if (!PlacementHints.TryParse(labels, out var constraints, out var error))
        {
            throw ApiException.Invalid(error!);
        }
        return new PlacementRequest(resources, constraints);
    }

    private static Guid ParseId(string id, string field)
        => Guid.TryParse(id, out var parsed) && parsed != Guid.Empty ? parsed : throw ApiException.Invalid($"{field} '{Truncate(id)}' is not a valid id.");

    private static string Truncate(string text) => text.Length <= 64 ? text : text[..64] + "...";

    private static IQueryable<PlacementDecisionEntity> Decisions(LedgerDbContext db, Caller caller)
        => caller.IsOperator ? db.Set<PlacementDecisionEntity>().AsNoTracking() : db.Set<PlacementDecisionEntity>().AsNoTracking().Where(d => d.ProjectId == caller.ProjectId);

    private static IQueryable<ServerGroupEntity> Groups(LedgerDbContext db, Caller caller)
        => db.Set<ServerGroupEntity>().AsNoTracking().Where(g => g.ProjectId == caller.ProjectId);

    private static async Task<Dictionary<Guid, List<Guid>>> MembersAsync(LedgerDbContext db, Guid[] groups, CancellationToken cancellationToken)
        => (await db.Set<ServerGroupMemberEntity>().AsNoTracking().Where(m => groups.Contains(m.GroupId)).ToListAsync(cancellationToken))
            .GroupBy(m => m.GroupId).ToDictionary(g => g.Key, g => g.Select(m => m.ConsumerId).Order().ToList());

    private static async Task<Dictionary<Guid, List<string>>> AggregateNodesAsync(LedgerDbContext db, Guid? aggregate, CancellationToken cancellationToken)
    {
        var members = db.Set<AggregateNodeEntity>().AsNoTracking().Where(m => aggregate == null || m.AggregateId == aggregate);
        var rows = await members.Join(db.Nodes.AsNoTracking(), m => m.NodeId, n => n.Id, (m, n) => new { m.AggregateId, n.Name }).ToListAsync(cancellationToken);
        return rows.GroupBy(r => r.AggregateId).ToDictionary(g => g.Key, g => g.Select(r => r.Name).Order(StringComparer.Ordinal).ToList());
    }

    private static async Task<(AggregateEntity Aggregate, NodeEntity Node)> FindAggregateAndNodeAsync(LedgerDbContext db, AggregateNodeRequest request, CancellationToken cancellationToken)
    {
        var aggregate = await db.Set<AggregateEntity>().AsNoTracking().SingleOrDefaultAsync(a => a.Name == request.Aggregate, cancellationToken)
            ?? throw ApiException.NotFound("Aggregate", request.Aggregate);
        var node = await db.Nodes.AsNoTracking().SingleOrDefaultAsync(n => n.Name == request.Node, cancellationToken)
            ?? throw ApiException.NotFound("Node", request.Node);
        return (aggregate, node);
    }

    private static IEnumerable<FilterRejection> Rejections(IReadOnlyDictionary<string, int> counts, IReadOnlyDictionary<string, string>? examples)
        => counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new FilterRejection { Filter = kv.Key, Nodes = kv.Value, Example = examples?.GetValueOrDefault(kv.Key) ?? "" });

    private static PlacementDecision ToMessage(PlacementDecisionEntity d)
    {
        var message = new PlacementDecision
        {
            Id = d.Id.ToString(),
            ConsumerId = d.ConsumerId?.ToString() ?? "",
            Kind = d.Kind,
            Outcome = d.Outcome,
            Node = d.NodeName ?? "",
            NodesConsidered = d.NodesConsidered,
            NearestMiss = d.NearestMiss ?? "",
            Summary = d.Summary,
            Attempts = d.Attempts,
            CreateTime = Timestamp.FromDateTimeOffset(d.CreatedAt),
            RequestJson = d.Request,
            Project = d.ProjectId,
        };
        message.Rejections.Add(Rejections(JsonSerializer.Deserialize<Dictionary<string, int>>(d.Rejections) ?? [], null));
        return message;
    }

    private static ServerGroup ToMessage(ServerGroupEntity group, Dictionary<Guid, List<Guid>> members)
    {
        var message = new ServerGroup
        {
            Id = group.Id.ToString(),
            Name = group.Name,
            Policy = group.Policy,
            MaxMembers = group.MaxMembers,
            CreateTime = Timestamp.FromDateTimeOffset(group.CreatedAt),
        };
        message.MemberIds.Add((members.GetValueOrDefault(group.Id) ?? []).Select(m => m.ToString()));
        return message;
    }

    private static Contracts.Compute.V1.Aggregate ToMessage(AggregateEntity aggregate, List<string> nodes)
    {
        var message = new Contracts.Compute.V1.Aggregate
        {
            Id = aggregate.Id.ToString(),
            Name = aggregate.Name,
            AvailabilityZone = aggregate.AvailabilityZone ?? "",
            CreateTime = Timestamp.FromDateTimeOffset(aggregate.CreatedAt),
        };
        message.Nodes.Add(nodes);
        return message;
    }
}
