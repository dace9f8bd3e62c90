namespace Cloud.Contracts.Compute.V1;

/// <summary>A request that acts on one VM (named in the REST path) and may carry an idempotency key.</summary>
public interface IVmVerbRequest
{
    string Id { get; set; }

    string IdempotencyKey { get; set; }
}

public sealed partial class VmActionRequest : IVmVerbRequest
{
}

public sealed partial class StopVmRequest : IVmVerbRequest
{
}

public sealed partial class ResizeVmRequest : IVmVerbRequest
{
}

public sealed partial class MigrateVmRequest : IVmVerbRequest
{
}
