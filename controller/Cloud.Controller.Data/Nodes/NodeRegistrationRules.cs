namespace Cloud.Controller.Data;

/// <summary>
/// The ledger's own checks of a registration, matching the table's constraints so that a bad
/// registration fails with a message that names the field rather than a constraint violation.
/// </summary>
internal static class NodeRegistrationRules
{
    public const int MaxNameLength = 63;

    /// <exception cref="ArgumentException">The registration breaks a rule; the message says which.</exception>
    public static void Validate(NodeRegistration registration)
    {
        ArgumentNullException.ThrowIfNull(registration);
        if (string.IsNullOrEmpty(registration.Name) || registration.Name.Length > MaxNameLength)
        {
            throw Invalid($"Node name '{registration.Name}' must have 1 to {MaxNameLength} characters.");
        }
        if (string.IsNullOrWhiteSpace(registration.Address))
        {
            throw Invalid($"Node {registration.Name} has no agent address.");
        }
        if (registration.Hypervisor is null || registration.Accelerator is null || registration.AvailabilityZone is null)
        {
            throw Invalid($"Node {registration.Name}: hypervisor, accelerator and availability zone may be empty but not null.");
        }
        if (registration.Traits is null || registration.Traits.Any(string.IsNullOrEmpty))
        {
            throw Invalid($"Node {registration.Name}: traits must be a list of non-empty names.");
        }
        if (registration.Inventories is null)
        {
            throw Invalid($"Node {registration.Name} has no inventory list.");
        }
        foreach (var (resourceClass, inventory) in registration.Inventories)
        {
            if (!ClaimPlan.ResourceClassName().IsMatch(resourceClass))
            {
                throw Invalid($"Node {registration.Name}: resource class '{resourceClass}' must be A-Z, 0-9 and '_', starting with a letter.");
            }
            if (inventory is null)
            {
                throw Invalid($"Node {registration.Name}: {resourceClass} has no inventory.");
            }
            if (inventory.Total < 0 || inventory.Reserved < 0 || inventory.Reserved > inventory.Total)
            {
                throw Invalid($"Node {registration.Name}: {resourceClass} total and reserved must be non-negative, reserved at most total (total {inventory.Total}, reserved {inventory.Reserved}).");
            }
            if (!double.IsFinite(inventory.AllocationRatio) || inventory.AllocationRatio <= 0)
            {
                throw Invalid($"Node {registration.Name}: {resourceClass} allocation ratio must be a positive number, not {inventory.AllocationRatio}.");
            }
            if (inventory.MinUnit < 1 || inventory.StepSize < 1 || inventory.MaxUnit < inventory.MinUnit)
            {
                throw Invalid($"Node {registration.Name}: {resourceClass} needs min_unit >= 1, step_size >= 1 and max_unit >= min_unit (min {inventory.MinUnit}, max {inventory.MaxUnit}, step {inventory.StepSize}).");
            }
        }
    }

    private static ArgumentException Invalid(string message) => new(message, "registration");
}
