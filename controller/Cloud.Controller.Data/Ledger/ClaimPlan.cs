using System.Text.RegularExpressions;

namespace Cloud.Controller.Data;

/// <summary>
/// A claim batch checked and flattened into the parallel arrays the claim's statements take:
/// one entry per node (with its expected generation), per consumer, and per allocation.
/// </summary>
internal sealed partial class ClaimPlan
{
    private ClaimPlan()
    {
    }

    public Guid[] NodeIds { get; private init; } = [];
    public long[] ExpectedGenerations { get; private init; } = [];
    public Guid[] ConsumerIds { get; private init; } = [];
    public string[] ConsumerKinds { get; private init; } = [];
    public string[] ConsumerProjects { get; private init; } = [];
    public Guid[] AllocationConsumers { get; private init; } = [];
    public Guid[] AllocationNodes { get; private init; } = [];
    public string[] AllocationClasses { get; private init; } = [];
    public long[] AllocationAmounts { get; private init; } = [];

    public IReadOnlyList<(Guid Consumer, Guid Node, string ResourceClass, long Amount)> Allocations { get; private init; } = [];

    /// <summary>Resource class names: upper case, digits and '_', as in Placement (VCPU, MEMORY_MB, CUSTOM_X).</summary>
    [GeneratedRegex("^[A-Z][A-Z0-9_]{0,63}$")]
    internal static partial Regex ResourceClassName();

    /// <exception cref="ArgumentException">The batch is malformed; the message names the claim.</exception>
    public static ClaimPlan Build(IReadOnlyList<Claim> claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        if (claims.Count > CapacityLedger.MaxClaimsPerBatch)
        {
            throw new ArgumentException($"A batch holds at most {CapacityLedger.MaxClaimsPerBatch} claims, not {claims.Count}.", nameof(claims));
        }

        var generations = new SortedDictionary<Guid, long>();
        var consumers = new Dictionary<Guid, (string Kind, string Project)>();
        var allocations = new Dictionary<(Guid Consumer, Guid Node, string ResourceClass), long>();
        for (var index = 0; index < claims.Count; index++)
        {
            var claim = claims[index] ?? throw Invalid(index, "is null");
            if (claim.ConsumerId == Guid.Empty)
            {
                throw Invalid(index, "has no consumer id");
            }
            if (claim.NodeId == Guid.Empty)
            {
                throw Invalid(index, "has no node id");
            }
            if (claim.ConsumerKind is not (Data.ConsumerKinds.Vm or Data.ConsumerKinds.Migration))
            {
                throw Invalid(index, $"has consumer kind '{claim.ConsumerKind}'; it must be '{Data.ConsumerKinds.Vm}' or '{Data.ConsumerKinds.Migration}'");
            }
            if (string.IsNullOrWhiteSpace(claim.ProjectId))
            {
                throw Invalid(index, "has no project id");
            }
            if (claim.ExpectedGeneration < Claim.AnyGeneration)
            {
                throw Invalid(index, $"expects generation {claim.ExpectedGeneration}; generations start at 0 ({Claim.AnyGeneration} for a claim checked on capacity alone)");
            }
            if (claim.Resources is null || claim.Resources.Count == 0)
            {
                throw Invalid(index, "asks for no resources");
            }
            if (generations.TryGetValue(claim.NodeId, out var expected) && expected != claim.ExpectedGeneration)
            {
                throw Invalid(index, $"expects generation {claim.ExpectedGeneration} of node {claim.NodeId}, another claim of the batch {expected}; claims on one node share the generation they were decided on");
            }
            generations[claim.NodeId] = claim.ExpectedGeneration;
            if (consumers.TryGetValue(claim.ConsumerId, out var consumer) && consumer != (claim.ConsumerKind, claim.ProjectId))
            {
                throw Invalid(index, $"gives consumer {claim.ConsumerId} another kind or project than an earlier claim of the batch");
            }
            consumers[claim.ConsumerId] = (claim.ConsumerKind, claim.ProjectId);

            foreach (var (resourceClass, amount) in claim.Resources)
            {
                if (resourceClass is null || !ResourceClassName().IsMatch(resourceClass))
                {
                    throw Invalid(index, $"names resource class '{resourceClass}'; names are A-Z, 0-9 and '_', starting with a letter");
                }
                if (amount <= 0)
                {
                    throw Invalid(index, $"asks for {amount} {resourceClass}; amounts must be positive (leave a class out to ask for none)");
                }
                var key = (claim.ConsumerId, claim.NodeId, resourceClass);
                // Two claims of one consumer on one node add up, as a claim adds to what is held.
                allocations[key] = checked(allocations.GetValueOrDefault(key) + amount);
            }
        }

        var flat = allocations.Select(a => (a.Key.Consumer, a.Key.Node, a.Key.ResourceClass, Amount: a.Value)).ToList();
        return new ClaimPlan
        {
            NodeIds = [.. generations.Keys],
            ExpectedGenerations = [.. generations.Values],
            ConsumerIds = [.. consumers.Keys],
            ConsumerKinds = [.. consumers.Values.Select(c => c.Kind)],
            ConsumerProjects = [.. consumers.Values.Select(c => c.Project)],
            AllocationConsumers = [.. flat.Select(a => a.Consumer)],
            AllocationNodes = [.. flat.Select(a => a.Node)],
            AllocationClasses = [.. flat.Select(a => a.ResourceClass)],
            AllocationAmounts = [.. flat.Select(a => a.Amount)],
            Allocations = flat,
        };
    }

    private static ArgumentException Invalid(int index, string problem) => new($"Claim {index} {problem}.", "claims");
}
