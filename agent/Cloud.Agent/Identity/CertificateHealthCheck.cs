using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cloud.Agent.Identity;

/// <summary>Readiness: a node whose certificate could not be renewed says why, before it expires.</summary>
internal sealed class CertificateHealthCheck(CertificateRenewal renewal) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        => Task.FromResult(renewal.Problem is { } problem ? HealthCheckResult.Unhealthy(problem) : HealthCheckResult.Healthy());
}
