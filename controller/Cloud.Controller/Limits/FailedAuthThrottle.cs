using System.Net;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Limits;

/// <summary>
/// Failed authentications per source IP address, so that guessing tokens is slow: each failure
/// takes one permit of the address's bucket, which holds <see cref="RateLimitOptions.FailedAuthPerMinute"/>
/// and refills at that many a minute. Successful authentications take nothing, so a valid token never uses up
/// its address's budget. The address is the connection's peer: behind a proxy, every caller shares
/// the proxy's.
/// </summary>
internal sealed class FailedAuthThrottle : IDisposable
{
    private readonly PartitionedRateLimiter<IPAddress> _limiter;
    private readonly TimeSpan _perPermit;

    public FailedAuthThrottle(IOptions<RateLimitOptions> options)
    {
        var perMinute = options.Value.FailedAuthPerMinute;
        _perPermit = TimeSpan.FromMinutes(1) / perMinute;
        _limiter = PartitionedRateLimiter.Create<IPAddress, IPAddress>(address => RateLimitPartition.GetTokenBucketLimiter(address, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = perMinute,
            TokensPerPeriod = perMinute,
            ReplenishmentPeriod = TimeSpan.FromMinutes(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
    }

    /// <summary>How long <paramref name="address"/> must wait when it used up its failures; null while it has some left.</summary>
    public TimeSpan? RetryAfter(IPAddress address)
        // A partition's bucket refills continuously (a fraction of a permit at a time): the address
        // may try again once a whole permit is back.
        => _limiter.GetStatistics(Normalize(address)) is { CurrentAvailablePermits: < 1 } ? _perPermit : null;

    public void RecordFailure(IPAddress address)
    {
        using var lease = _limiter.AttemptAcquire(Normalize(address), 1);
    }

    public void Dispose() => _limiter.Dispose();

    private static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}
