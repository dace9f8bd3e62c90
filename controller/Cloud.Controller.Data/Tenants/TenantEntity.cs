namespace Cloud.Controller.Data;

/// <summary>
/// A tenant (project): the owner of VMs, snapshots and operations, and the unit of quotas. The
/// quota's usage lives on the same row, so that a charge is one conditional update that
/// commits with the capacity claim (docs/design/007-tenancy-and-quotas.md).
/// </summary>
internal sealed class TenantEntity
{
    /// <summary>A DNS label chosen by the operator; the project id of everything the tenant owns.</summary>
    public string Id { get; set; } = "";

    public string DisplayName { get; set; } = "";

    public DateTimeOffset CreatedAt { get; set; }

    public int MaxInstances { get; set; }

    public int MaxVcpus { get; set; }

    public long MaxMemoryMb { get; set; }

    public long MaxDiskGb { get; set; }

    public int MaxSnapshots { get; set; }

    public int MaxImages { get; set; }

    public long MaxImageGb { get; set; }

    public int UsedInstances { get; set; }

    public int UsedVcpus { get; set; }

    public long UsedMemoryMb { get; set; }

    public long UsedDiskGb { get; set; }

    public int UsedSnapshots { get; set; }

    public int UsedImages { get; set; }

    public long UsedImageGb { get; set; }

    /// <summary>
    /// Set when an operator asked for the tenant's deletion: its tokens are revoked and no token
    /// is issued for it any more, while a tenant.delete operation removes what it owns.
    /// </summary>
    public DateTimeOffset? DeletingSince { get; set; }
}

/// <summary>
/// An API token. Only the SHA-256 of the secret is stored: tokens are 256 random bits, so a
/// fast hash is enough (there is nothing to brute-force), and the lookup stays one index probe.
/// </summary>
internal sealed class ApiTokenEntity
{
    public Guid Id { get; set; }

    /// <summary>The tenant the token acts for; null for an operator token.</summary>
    public string? TenantId { get; set; }

    public string Name { get; set; } = "";

    /// <summary><see cref="TokenRoles"/>: member, reader or operator.</summary>
    public string Role { get; set; } = TokenRoles.Member;

    /// <summary>Lowercase hex SHA-256 of the secret.</summary>
    public string TokenSha256 { get; set; } = "";

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset? ExpiresAt { get; set; }

    public DateTimeOffset? RevokedAt { get; set; }
}

/// <summary>What a token may do.</summary>
internal static class TokenRoles
{
    /// <summary>Reads and changes its tenant's resources.</summary>
    public const string Member = "member";

    /// <summary>Reads its tenant's resources only.</summary>
    public const string Reader = "reader";

    /// <summary>Everything, across all tenants.</summary>
    public const string Operator = "operator";
}
