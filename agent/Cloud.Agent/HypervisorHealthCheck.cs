using Cloud.Agent.Hypervisor;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cloud.Agent;

/// <summary>Readiness of the agent: its hypervisor backend answers (node facts and its VM list).</summary>
internal sealed class HypervisorHealthCheck(IHypervisor hypervisor) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var node = await hypervisor.GetNodeInfoAsync(cancellationToken);
            var vms = await hypervisor.ListVmsAsync(cancellationToken);
            return HealthCheckResult.Healthy($"{node.Hypervisor} answers with {vms.Count} VM(s).");
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return HealthCheckResult.Unhealthy($"The hypervisor backend does not answer: {e.Message}");
        }
    }
}
