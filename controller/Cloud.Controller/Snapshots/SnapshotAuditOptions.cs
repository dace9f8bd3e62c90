using Microsoft.Extensions.Options;

namespace Cloud.Controller.Snapshots;

/// <summary>The snapshot audit (<see cref="SnapshotAudit"/>). Section "Snapshots".</summary>
public sealed class SnapshotAuditOptions
{
    public const string SectionName = "Snapshots";

    /// <summary>
    /// How often every replica compares the ledger's READY and LOST snapshots with what their
    /// nodes report (one ListVms per node). A snapshot whose node went down or lost its data is
    /// LOST at most this long after; one whose node came back is READY again as soon. Default 60 s.
    /// </summary>
    public TimeSpan AuditInterval { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How many nodes one round asks at once. Default 8.</summary>
    public int ConcurrentNodes { get; set; } = 8;
}

/// <summary>Every rule names its setting.</summary>
internal sealed class SnapshotAuditOptionsValidator : IValidateOptions<SnapshotAuditOptions>
{
    public ValidateOptionsResult Validate(string? name, SnapshotAuditOptions options)
    {
        var failures = new List<string>();
        if (options.AuditInterval < TimeSpan.FromSeconds(1))
        {
            failures.Add("Snapshots:AuditInterval must be at least one second.");
        }
        if (options.ConcurrentNodes is < 1 or > 256)
        {
            failures.Add("Snapshots:ConcurrentNodes must be between 1 and 256.");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

/// <summary>Registration of the snapshot audit.</summary>
internal static class SnapshotAuditExtensions
{
    public static IServiceCollection AddSnapshotAudit(this IServiceCollection services)
    {
        services.AddOptions<SnapshotAuditOptions>().BindConfiguration(SnapshotAuditOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<SnapshotAuditOptions>, SnapshotAuditOptionsValidator>();
        services.AddSingleton<SnapshotAudit>();
        services.AddHostedService(provider => provider.GetRequiredService<SnapshotAudit>());
        return services;
    }
}
