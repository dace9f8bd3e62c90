namespace Cloud.Controller.Data;

/// <summary>
/// A node: a resource provider in the ledger. Its <see cref="Generation"/> moves with every
/// change of what it holds (allocations) or offers (inventories), so a claim made against a
/// stale view of the node is refused.
/// </summary>
internal sealed class NodeEntity
{
    public Guid Id { get; set; }

    /// <summary>Unique DNS label, 1 to 63 characters.</summary>
    public string Name { get; set; } = "";

    /// <summary>The agent's gRPC URL, such as http://127.0.0.2:7070.</summary>
    public string Address { get; set; } = "";

    public string Hypervisor { get; set; } = "";

    public string Accelerator { get; set; } = "";

    public string AvailabilityZone { get; set; } = "";

    public List<string> Traits { get; set; } = [];

    /// <summary><see cref="NodeStates.Up"/> or <see cref="NodeStates.Down"/>.</summary>
    public string State { get; set; } = NodeStates.Up;

    /// <summary>False while an operator drains the node: it keeps its VMs but gets no new ones.</summary>
    public bool Schedulable { get; set; }

    /// <summary>Bumped by every allocation or inventory change; never by heartbeats.</summary>
    public long Generation { get; set; }

    public DateTimeOffset RegisteredAt { get; set; }

    public DateTimeOffset? LastHeartbeatAt { get; set; }

    /// <summary>Issued at every registration; heartbeats carry it (NodeRegistry.Register).</summary>
    public Guid? HeartbeatSession { get; set; }

    /// <summary>The highest heartbeat number taken in <see cref="HeartbeatSession"/>.</summary>
    public long? HeartbeatSequence { get; set; }
}

/// <summary>The states of a node.</summary>
internal static class NodeStates
{
    public const string Up = "UP";
    public const string Down = "DOWN";
}
