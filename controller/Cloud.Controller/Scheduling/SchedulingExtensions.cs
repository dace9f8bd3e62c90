using Cloud.Controller.Data;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Scheduling;

/// <summary>Registration of the scheduler's filters, weighers, view and records.</summary>
internal static class SchedulingExtensions
{
    /// <summary>
    /// Adds the scheduler with its filters, weighers, engine, view and decision store, bound to
    /// the "Scheduler" section (also enough on its own, for tools and tests on the ledger). More filters or weighers: register another <see cref="INodeFilter"/>
    /// or <see cref="INodeWeigher"/>.
    /// </summary>
    public static IServiceCollection AddScheduling(this IServiceCollection services)
    {
        services.AddOptions<SchedulerOptions>().BindConfiguration(SchedulerOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SchedulerOptions>, SchedulerOptionsValidation>());
        services.TryAddSingleton(TimeProvider.System);
        // TryAdd throughout: the host may have registered some of these already.
        services.TryAddEnumerable(
        [
            ServiceDescriptor.Singleton<INodeFilter, NodeUpFilter>(),
            ServiceDescriptor.Singleton<INodeFilter, AvailabilityZoneFilter>(),
            ServiceDescriptor.Singleton<INodeFilter, AggregateFilter>(),
            ServiceDescriptor.Singleton<INodeFilter, HypervisorFilter>(),
            ServiceDescriptor.Singleton<INodeFilter, TraitsFilter>(),
            ServiceDescriptor.Singleton<INodeFilter, ServerGroupFilter>(),
            ServiceDescriptor.Singleton<INodeFilter, ResourceFitFilter>(),
            ServiceDescriptor.Singleton<INodeWeigher, ResourceWeigher>(),
            ServiceDescriptor.Singleton<INodeWeigher, FragmentationWeigher>(),
            ServiceDescriptor.Singleton<INodeWeigher, ServerGroupSoftWeigher>(),
        ]);
        services.TryAddSingleton<PlacementEngine>();
        services.TryAddSingleton<CapacityView>();
        services.TryAddSingleton<PlacementStore>();
        services.TryAddSingleton<Scheduler>();
        services.TryAddSingleton<DecisionJanitor>();
        services.AddHostedService(provider => provider.GetRequiredService<DecisionJanitor>());
        services.TryAddSingleton<ClaimLoop>();
        services.AddHostedService(provider => provider.GetRequiredService<ClaimLoop>());
        services.AddMetrics();
        services.TryAddSingleton<CapacityMetrics>();
        services.AddHostedService(provider => provider.GetRequiredService<CapacityMetrics>());
        services.TryAddSingleton<NodeChangeListener>();
        services.AddHostedService(provider => provider.GetRequiredService<NodeChangeListener>());
        return services;
    }
}

/// <summary>The scheduler's cross-field rules; messages name the setting.</summary>
/// <remarks>
/// The weighers are resolved when validating, not injected: a weigher may depend on these
/// options, and injecting them would make the options depend on themselves.
/// </remarks>
internal sealed class SchedulerOptionsValidation(IServiceProvider services) : IValidateOptions<SchedulerOptions>
{
    public ValidateOptionsResult Validate(string? name, SchedulerOptions options)
    {
        var failures = new List<string>();
        var known = services.GetServices<INodeWeigher>().Select(w => w.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var weigher in options.Weights.Keys.Where(k => !known.Contains(k)))
        {
            failures.Add($"Scheduler:Weights names '{weigher}', which is not a weigher; the weighers are {string.Join(", ", known.Order(StringComparer.Ordinal))}.");
        }
        if (options.MaxFeasibleNodes < 0)
        {
            failures.Add($"Scheduler:MaxFeasibleNodes must be 0 (weigh every node) or more, not {options.MaxFeasibleNodes}.");
        }
        if (options.MaxBatchSize is < 1 or > CapacityLedger.MaxClaimsPerBatch)
        {
            failures.Add($"Scheduler:MaxBatchSize must be between 1 and {CapacityLedger.MaxClaimsPerBatch}, not {options.MaxBatchSize}.");
        }
        if (options.GroupCommitMaxSize < 0 || options.GroupCommitMaxSize > options.MaxBatchSize)
        {
            failures.Add($"Scheduler:GroupCommitMaxSize must be between 0 (off) and Scheduler:MaxBatchSize ({options.MaxBatchSize}), not {options.GroupCommitMaxSize}.");
        }
        if (options.ClaimLoops is < 1 or > 16)
        {
            failures.Add($"Scheduler:ClaimLoops must be between 1 and 16, not {options.ClaimLoops}.");
        }
        if (options.DecisionRetention < TimeSpan.FromHours(1))
        {
            failures.Add($"Scheduler:DecisionRetention must be at least an hour, not {options.DecisionRetention}.");
        }
        if (options.RefreshInterval <= TimeSpan.Zero)
        {
            failures.Add("Scheduler:RefreshInterval must be positive.");
        }
        if (options.FullReloadInterval < options.RefreshInterval)
        {
            failures.Add($"Scheduler:FullReloadInterval must be at least Scheduler:RefreshInterval ({options.RefreshInterval}), not {options.FullReloadInterval}.");
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
