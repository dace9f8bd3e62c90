namespace Cloud.Controller.Data;

/// <summary>What a node offers of one resource class.</summary>
/// <param name="Total">Physical amount.</param>
/// <param name="Reserved">Kept back for the host itself; never allocated.</param>
/// <param name="AllocationRatio">Overcommit factor applied to <c>Total - Reserved</c>.</param>
/// <param name="MinUnit">Smallest single allocation.</param>
/// <param name="MaxUnit">Largest single allocation.</param>
/// <param name="StepSize">A single allocation is a multiple of this.</param>
internal sealed record ResourceInventory(long Total, long Reserved, double AllocationRatio, long MinUnit, long MaxUnit, long StepSize)
{
    /// <summary>
    /// floor((total - reserved) * ratio), computed in double precision exactly as the database's
    /// capacity check does, so that the scheduler's view and the safety net agree to the unit.
    /// </summary>
    public long Capacity => (long)Math.Floor((Total - Reserved) * AllocationRatio);
}

/// <summary>What <see cref="CapacityLedger.LoadNodeVersionsAsync"/> reads of a node: enough to tell whether a view's copy is current.</summary>
internal readonly record struct NodeVersion(Guid NodeId, long Generation, string State, bool Schedulable);

/// <summary>A node as the scheduler sees it: where it is, what it offers and what is used.</summary>
internal sealed record NodeCapacity(
    Guid NodeId,
    string Name,
    string Address,
    string State,
    bool Schedulable,
    string AvailabilityZone,
    IReadOnlyList<string> Traits,
    long Generation,
    IReadOnlyDictionary<string, ResourceInventory> Inventories,
    IReadOnlyDictionary<string, long> Used)
{
    /// <summary>The node's hypervisor (qemu, fake...), for the hypervisor filter.</summary>
    public string Hypervisor { get; init; } = "";

    /// <summary>Names of the host aggregates the node is in, sorted.</summary>
    public IReadOnlyList<string> Aggregates { get; init; } = [];

    /// <summary>
    /// floor((total - reserved) * ratio) - used. Negative when the node is overcommitted (its
    /// inventory shrank below what it holds); minus the usage when it has no such inventory.
    /// </summary>
    public long Free(string resourceClass)
    {
        var used = Used.TryGetValue(resourceClass, out var amount) ? amount : 0;
        return Inventories.TryGetValue(resourceClass, out var inventory) ? inventory.Capacity - used : -used;
    }
}

/// <summary>
/// Resources one consumer asks of one node, made against the node's <paramref name="ExpectedGeneration"/>.
/// A claim adds to what the consumer already holds on the node (a resize claims the difference).
/// </summary>
internal sealed record Claim(
    Guid ConsumerId,
    string ConsumerKind,
    string ProjectId,
    Guid NodeId,
    long ExpectedGeneration,
    IReadOnlyDictionary<string, long> Resources)
{
    /// <summary>
    /// A conditional claim: it goes through whatever the node's generation, as long as the
    /// capacity check under the node's lock passes. For decisions that depend on the node's
    /// capacity alone, where a stale view costs a refusal only when the node is really full.
    /// </summary>
    public const long AnyGeneration = -1;
}

/// <summary>Why a claim was refused on a node.</summary>
internal enum ClaimConflictReason
{
    /// <summary>The node changed since the caller read it: reload it and decide again.</summary>
    StaleGeneration,

    /// <summary>The node no longer exists.</summary>
    NodeMissing,

    /// <summary>
    /// The generation matched but the claim would overfill the node or break its unit rules:
    /// the caller's view of the node was wrong, or its request does not fit the node at all.
    /// </summary>
    InsufficientCapacity,

    /// <summary>The database broke a deadlock or a lock wait by refusing this claim.</summary>
    Contention,
}

/// <summary>One refused node of a claim batch.</summary>
internal sealed record ClaimConflict(Guid NodeId, ClaimConflictReason Reason);

/// <summary>
/// The outcome of a claim batch: everything was claimed (no conflicts), or nothing was and
/// <see cref="Conflicts"/> names the nodes to reload before trying again.
/// </summary>
internal sealed record ClaimResult(IReadOnlyList<ClaimConflict> Conflicts)
{
    public static ClaimResult Success { get; } = new([]);

    public bool Succeeded => Conflicts.Count == 0;

    public IReadOnlyList<Guid> ConflictingNodeIds => [.. Conflicts.Select(c => c.NodeId).Distinct()];
}

/// <summary>What an agent registers: the node and its inventory per resource class.</summary>
internal sealed record NodeRegistration(
    string Name,
    string Address,
    string Hypervisor,
    string Accelerator,
    string AvailabilityZone,
    IReadOnlyList<string> Traits,
    IReadOnlyDictionary<string, ResourceInventory> Inventories);
