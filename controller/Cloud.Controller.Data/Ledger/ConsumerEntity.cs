namespace Cloud.Controller.Data;

/// <summary>
/// Something that holds allocations: a VM (its id is the VM's id), or an in-flight migration
/// (its id is the id of the migration's operation, whose target is the VM).
/// </summary>
internal sealed class ConsumerEntity
{
    public Guid Id { get; set; }

    /// <summary><see cref="ConsumerKinds.Vm"/> or <see cref="ConsumerKinds.Migration"/>.</summary>
    public string Kind { get; set; } = ConsumerKinds.Vm;

    public string ProjectId { get; set; } = "";

    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>Bumped by every claim made for this consumer.</summary>
    public long Generation { get; set; }
}

/// <summary>The kinds of consumer.</summary>
internal static class ConsumerKinds
{
    public const string Vm = "vm";
    public const string Migration = "migration";
}
