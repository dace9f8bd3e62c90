using System.ComponentModel.DataAnnotations;

namespace Cloud.Controller.Limits;

/// <summary>Abuse limits: requests per API token, failed authentications per source address. Section "RateLimits".</summary>
public sealed class RateLimitOptions
{
    public const string SectionName = "RateLimits";

    /// <summary>Requests per second each API token may make to the API (REST /v1, gRPC Compute and Placement), sustained. Default 200.</summary>
    [Range(1, 1_000_000)]
    public int PerTokenRequestsPerSecond { get; set; } = 200;

    /// <summary>Requests a token may make at once above the sustained rate (the token bucket's size). Default 400.</summary>
    [Range(1, 1_000_000)]
    public int PerTokenBurst { get; set; } = 400;

    /// <summary>
    /// Failed authentications each source IP address may make per minute. Past it, a request from that
    /// address with a token not known to be valid is refused (429) before the database is asked. Default 60.
    /// </summary>
    [Range(1, 1_000_000)]
    public int FailedAuthPerMinute { get; set; } = 60;
}
