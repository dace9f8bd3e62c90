using Cloud.Controller.Data;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Scheduling;

/// <summary>Registration of the scheduler's filters, weighers, view and records.</summary>
internal static class SchedulingExtensions
{
    /// <summary>
    /// Adds the filters and weighers beyond node-up and resource-fit, the engine, the view and
    /// the decision store. More filters or weighers: register another <see cref="INodeFilter"/>
    /// or <see cref="INodeWeigher"/>.
    /// </summary>
    public static IServiceCollection AddScheduling(this IServiceCollection services)
    {
        services.AddSingleton<IValidateOptions<SchedulerOptions>, SchedulerOptionsValidation>();
        services.AddSingleton<INodeFilter, AvailabilityZoneFilter>();
        services.AddSingleton<INodeFilter, AggregateFilter>();
        services.AddSingleton<INodeFilter, HypervisorFilter>();
        services.AddSingleton<INodeFilter, TraitsFilter>();
        services.AddSingleton<INodeFilter, ServerGroupFilter>();
        services.AddSingleton<INodeWeigher, ResourceWeigher>();
        services.AddSingleton<INodeWeigher, FragmentationWeigher>();
        services.AddSingleton<INodeWeigher, ServerGroupSoftWeigher>();
        services.AddSingleton<PlacementEngine>();
        services.AddSingleton<CapacityView>();
        services.AddSingleton<PlacementStore>();
        return services;
    }
}

/// <summary>The scheduler's cross-field rules; messages name the setting.</summary>
internal sealed class SchedulerOptionsValidation : IValidateOptions<SchedulerOptions>
{
    public ValidateOptionsResult Validate(string? name, SchedulerOptions options)
    {
        var failures = new List<string>();
        if (options.MaxFeasibleNodes < 0)
        {
            failures.Add($"Scheduler:MaxFeasibleNodes must be 0 (weigh every node) or more, not {options.MaxFeasibleNodes}.");
        }
        if (options.MaxBatchSize is < 1 or > CapacityLedger.MaxClaimsPerBatch)
        {
            failures.Add($"Scheduler:MaxBatchSize must be between 1 and {CapacityLedger.MaxClaimsPerBatch}, not {options.MaxBatchSize}.");
        }
        if (options.RefreshInterval <= TimeSpan.Zero)
        {
            failures.Add("Scheduler:RefreshInterval must be positive.");
        }
        foreach (var (weigher, multiplier) in options.Weights)
        {
            if (!double.IsFinite(multiplier))
            {
                failures.Add($"Scheduler:Weights:{weigher} must be a finite number.");
            }
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
