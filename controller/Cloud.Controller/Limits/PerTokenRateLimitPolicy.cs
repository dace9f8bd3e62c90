using System.Security.Claims;
using System.Threading.RateLimiting;
using Cloud.Controller.Api;
using Grpc.Core;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Limits;

/// <summary>
/// A token bucket per authenticated subject (an API token's id, "operator", "agent"), so that one
/// token's burst never slows another. Runs after authentication and authorization, so an
/// unauthenticated request never gets here: it was refused already (and counted by <see cref="FailedAuthThrottle"/>).
/// </summary>
internal sealed class PerTokenRateLimitPolicy(IOptions<RateLimitOptions> options) : IRateLimiterPolicy<string>
{
    public const string Name = "per-token";

    public Func<OnRejectedContext, CancellationToken, ValueTask>? OnRejected { get; } = async (context, _) =>
    {
        var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1);
        await ApiRefusal.WriteAsync(context.HttpContext, StatusCode.ResourceExhausted,
            "Too many requests with this token: slow down and retry after the time in Retry-After.", "RATE_LIMITED", retryAfter);
    };

    public RateLimitPartition<string> GetPartition(HttpContext httpContext)
    {
        var subject = httpContext.User.FindFirstValue(ClaimTypes.NameIdentifier);
        if (subject is null)
        {
            return RateLimitPartition.GetNoLimiter("");
        }
        var limits = options.Value;
        return RateLimitPartition.GetTokenBucketLimiter(subject, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = limits.PerTokenBurst,
            TokensPerPeriod = limits.PerTokenRequestsPerSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        });
    }
}
