using System.Text.RegularExpressions;
using Cloud.Contracts.Node.V1;
using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Grpc.Core;

namespace Cloud.Controller.Nodes;

/// <summary>Checks what an agent registers before it becomes capacity in the ledger.</summary>
internal static partial class NodeValidation
{
    public const int MaxVmsPerHeartbeat = 10_000;
    private const int MaxTraits = 64;

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    private static partial Regex DnsLabel();

    [GeneratedRegex("^[A-Z0-9_]{1,64}$")]
    private static partial Regex Trait();

    public static NodeRegistration Validate(RegisterRequest request)
    {
        var node = request.Node ?? throw Invalid("node is required.");
        if (!DnsLabel().IsMatch(node.NodeName))
        {
            throw Invalid($"node_name '{Truncate(node.NodeName)}' must be a DNS label (lowercase letters, digits, '-', at most 63).");
        }
        if (!Uri.TryCreate(request.AgentAddress, UriKind.Absolute, out var address) || address.Scheme is not ("http" or "https") || address.AbsolutePath != "/")
        {
            throw Invalid($"agent_address '{Truncate(request.AgentAddress)}' must be an http(s) URL with no path, such as http://127.0.0.2:7070.");
        }
        if (node.Traits.Count > MaxTraits || node.Traits.Any(t => !Trait().IsMatch(t)))
        {
            throw Invalid($"traits must be at most {MaxTraits} names of A-Z, 0-9 and '_'.");
        }
        if (node.AvailabilityZone.Length > 63)
        {
            throw Invalid("availability_zone is longer than 63 characters.");
        }

        var inventories = new Dictionary<string, ResourceInventory>();
        foreach (var inventory in node.Inventories)
        {
            if (!ResourceClasses.All.Contains(inventory.ResourceClass))
            {
                throw Invalid($"resource_class '{Truncate(inventory.ResourceClass)}' is not one of {string.Join(", ", ResourceClasses.All)}.");
            }
            if (inventories.ContainsKey(inventory.ResourceClass))
            {
                throw Invalid($"resource_class {inventory.ResourceClass} appears twice.");
            }
            if (inventory.Total < 0 || inventory.Reserved < 0 || inventory.Reserved > inventory.Total)
            {
                throw Invalid($"{inventory.ResourceClass}: total and reserved must be non-negative, with reserved at most total.");
            }
            if (!double.IsFinite(inventory.AllocationRatio) || inventory.AllocationRatio <= 0 || inventory.AllocationRatio > 100)
            {
                throw Invalid($"{inventory.ResourceClass}: allocation_ratio must be above 0 and at most 100.");
            }
            var minUnit = Math.Max(1, inventory.MinUnit);
            var stepSize = Math.Max(1, inventory.StepSize);
            var maxUnit = inventory.MaxUnit == 0 ? inventory.Total : inventory.MaxUnit;
            if (inventory.MinUnit < 0 || inventory.StepSize < 0 || maxUnit < minUnit)
            {
                throw Invalid($"{inventory.ResourceClass}: min_unit, max_unit and step_size must be positive, with max_unit at least min_unit.");
            }
            inventories[inventory.ResourceClass] = new ResourceInventory(inventory.Total, inventory.Reserved, inventory.AllocationRatio, minUnit, maxUnit, stepSize);
        }

        return new NodeRegistration(
            node.NodeName,
            address.GetLeftPart(UriPartial.Authority),
            Truncate(node.Hypervisor),
            node.Accelerator.ToString().ToUpperInvariant(),
            node.AvailabilityZone.Length == 0 ? "default" : node.AvailabilityZone,
            [.. node.Traits],
            inventories);
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    private static string Truncate(string value) => value.Length <= 64 ? value : value[..64] + "...";
}
