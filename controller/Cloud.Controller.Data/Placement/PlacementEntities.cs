namespace Cloud.Controller.Data;

/// <summary>
/// A server group: VMs that must (or should) share a node, or must (or should) not. Hard
/// policies are filters, soft ones weighers; <see cref="MaxMembers"/> bounds the group.
/// </summary>
internal sealed class ServerGroupEntity
{
    public Guid Id { get; set; }

    public string ProjectId { get; set; } = "";

    /// <summary>Unique per project.</summary>
    public string Name { get; set; } = "";

    /// <summary>One of <see cref="ServerGroupPolicies"/>.</summary>
    public string Policy { get; set; } = ServerGroupPolicies.AntiAffinity;

    public int MaxMembers { get; set; }

    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>
/// A VM in a server group. Keyed on the VM's ledger consumer, so that releasing the VM's claim
/// also ends its membership (ON DELETE CASCADE): a group never counts a VM that holds nothing.
/// </summary>
internal sealed class ServerGroupMemberEntity
{
    public Guid GroupId { get; set; }

    public Guid ConsumerId { get; set; }
}

/// <summary>The policies of a server group, as Nova names them.</summary>
internal static class ServerGroupPolicies
{
    public const string Affinity = "affinity";
    public const string AntiAffinity = "anti-affinity";
    public const string SoftAffinity = "soft-affinity";
    public const string SoftAntiAffinity = "soft-anti-affinity";

    public static readonly IReadOnlyList<string> All = [Affinity, AntiAffinity, SoftAffinity, SoftAntiAffinity];
}

/// <summary>
/// A host aggregate: a named set of nodes an operator groups (by hardware, licence, tenant...).
/// Requests may ask for one. When <see cref="AvailabilityZone"/> is set, its nodes are in that
/// zone whatever their agents report, which is how an operator draws zones.
/// </summary>
internal sealed class AggregateEntity
{
    public Guid Id { get; set; }

    /// <summary>Unique, a DNS label.</summary>
    public string Name { get; set; } = "";

    public string? AvailabilityZone { get; set; }

    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>A node in an aggregate.</summary>
internal sealed class AggregateNodeEntity
{
    public Guid AggregateId { get; set; }

    public Guid NodeId { get; set; }
}

/// <summary>
/// One scheduling decision, kept so that "why is this VM there, and why did that one fail?"
/// has an answer afterwards: how many nodes each filter rejected, the nearest miss, the node
/// chosen. Dry runs are recorded too, with no consumer.
/// </summary>
internal sealed class PlacementDecisionEntity
{
    public Guid Id { get; set; }

    /// <summary>The VM placed (or not); null for a dry run.</summary>
    public Guid? ConsumerId { get; set; }

    public string ProjectId { get; set; } = "";

    /// <summary><c>place</c>, <c>batch</c> or <c>dry-run</c>.</summary>
    public string Kind { get; set; } = "";

    /// <summary><c>placed</c> or <c>failed</c>.</summary>
    public string Outcome { get; set; } = "";

    /// <summary>The node chosen. No foreign key: the record outlives the node.</summary>
    public Guid? NodeId { get; set; }

    public string? NodeName { get; set; }

    public int NodesConsidered { get; set; }

    /// <summary>JSON object: filter name to the number of nodes it rejected.</summary>
    public string Rejections { get; set; } = "{}";

    public string? NearestMiss { get; set; }

    public string Summary { get; set; } = "";

    /// <summary>JSON of what was asked: resources and constraints.</summary>
    public string Request { get; set; } = "{}";

    /// <summary>Claims tried: more than one when other replicas won races for the same capacity.</summary>
    public int Attempts { get; set; }

    public DateTimeOffset CreatedAt { get; set; }
}
