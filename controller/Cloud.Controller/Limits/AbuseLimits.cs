using Microsoft.AspNetCore.RateLimiting;

namespace Cloud.Controller.Limits;

/// <summary>Registration of the abuse limits: the per-token rate limit and the failed-authentication throttle.</summary>
internal static class AbuseLimits
{
    public static IServiceCollection AddAbuseLimits(this IServiceCollection services)
    {
        services.AddOptions<RateLimitOptions>().BindConfiguration(RateLimitOptions.SectionName)
            .ValidateDataAnnotations()
            .Validate(o => o.PerTokenBurst >= o.PerTokenRequestsPerSecond,
                "RateLimits:PerTokenBurst must be at least RateLimits:PerTokenRequestsPerSecond.")
            .ValidateOnStart();
        services.AddSingleton<FailedAuthThrottle>();
        services.AddRateLimiter(limiter =>
        {
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            limiter.AddPolicy<string, PerTokenRateLimitPolicy>(PerTokenRateLimitPolicy.Name);
        });
        return services;
    }

    /// <summary>Limits the endpoints of <paramref name="builder"/> per token.</summary>
    public static TBuilder RequirePerTokenRateLimit<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder
        => builder.RequireRateLimiting(PerTokenRateLimitPolicy.Name);
}
