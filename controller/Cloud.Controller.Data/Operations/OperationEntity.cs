namespace Cloud.Controller.Data;

/// <summary>
/// A persisted long-running operation: every mutating request is one. A replica runs it only
/// while it holds the lease (<see cref="Owner"/> until <see cref="LeaseExpiresAt"/>).
/// </summary>
internal sealed class OperationEntity
{
    public Guid Id { get; set; }

    public string ProjectId { get; set; } = "";

    /// <summary>vm.create, vm.delete, ...</summary>
    public string Kind { get; set; } = "";

    public string TargetId { get; set; } = "";

    /// <summary>PENDING, RUNNING, SUCCEEDED or FAILED.</summary>
    public string State { get; set; } = "PENDING";

    /// <summary>0 to 100.</summary>
    public int Progress { get; set; }

    public string? ErrorCode { get; set; }

    public string? ErrorMessage { get; set; }

    /// <summary>Unique per project when set: a retried request finds its first operation.</summary>
    public string? IdempotencyKey { get; set; }

    /// <summary>Hash of the request that used <see cref="IdempotencyKey"/>, to refuse a different request with the same key.</summary>
    public string? RequestHash { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>The controller replica running the operation, or null.</summary>
    public string? Owner { get; set; }

    public DateTimeOffset? LeaseExpiresAt { get; set; }

    /// <summary>
    /// Set when a replica took the operation over from one that stopped mid-way: RESUMED (the
    /// work went on from where it was) or ROLLED_BACK (what was done was undone). Null otherwise.
    /// </summary>
    public string? Recovery { get; set; }

    /// <summary>The handler's input as proto3 JSON (the resize's flavor, the snapshot's id, ...); null when the target says it all.</summary>
    public string? Request { get; set; }

    /// <summary>What the operation did, as proto3 JSON (a batch create's VMs); null for the kinds whose target and error say it all.</summary>
    public string? Result { get; set; }

    /// <summary>
    /// The W3C traceparent of the request that started the operation, so that the run (later,
    /// perhaps on another replica) continues the request's trace; null when it was not traced.
    /// </summary>
    public string? TraceParent { get; set; }
}
