using Cloud.Controller.Data;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Audit;

/// <summary>The audit trail: recording, retention. Section "Audit".</summary>
public sealed class AuditOptions
{
    public const string SectionName = "Audit";

    /// <summary>How long an event is kept. Older ones are deleted by <see cref="AuditRetention"/>. Default 90 days.</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(90);

    /// <summary>How often each replica deletes the events past <see cref="Retention"/>. Default 1 hour.</summary>
    public TimeSpan RetentionInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Events one DELETE removes at most, so that no statement holds many rows at once. Default 5,000.</summary>
    public int RetentionBatchSize { get; set; } = 5_000;

    /// <summary>
    /// Events waiting to be written. A request that finds the queue full waits for room (up to
    /// <see cref="EnqueueTimeout"/>) rather than dropping its event. Default 10,000.
    /// </summary>
    public int QueueCapacity { get; set; } = 10_000;

    /// <summary>Events one INSERT writes at most. Default 500.</summary>
    public int WriteBatchSize { get; set; } = 500;

    /// <summary>
    /// How long a request waits for room in a full queue (the database is away or slower than the
    /// calls). Past it the event goes to the error log in full instead, never silently. Default 30 s.
    /// </summary>
    public TimeSpan EnqueueTimeout { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>Every rule names its setting.</summary>
internal sealed class AuditOptionsValidator : IValidateOptions<AuditOptions>
{
    public ValidateOptionsResult Validate(string? name, AuditOptions options)
    {
        var failures = new List<string>();
        if (options.Retention < TimeSpan.FromHours(1) || options.Retention > TimeSpan.FromDays(3660))
        {
            failures.Add($"Audit:Retention must be between one hour and 3660 days; it is {options.Retention}.");
        }
        if (options.RetentionInterval < TimeSpan.FromSeconds(1) || options.RetentionInterval > TimeSpan.FromDays(1))
        {
            failures.Add($"Audit:RetentionInterval must be between one second and one day; it is {options.RetentionInterval}.");
        }
        if (options.RetentionBatchSize is < 1 or > 100_000)
        {
            failures.Add($"Audit:RetentionBatchSize must be between 1 and 100000; it is {options.RetentionBatchSize}.");
        }
        if (options.QueueCapacity is < 1 or > 1_000_000)
        {
            failures.Add($"Audit:QueueCapacity must be between 1 and 1000000; it is {options.QueueCapacity}.");
        }
        if (options.WriteBatchSize is < 1 or > 10_000)
        {
            failures.Add($"Audit:WriteBatchSize must be between 1 and 10000; it is {options.WriteBatchSize}.");
        }
        if (options.EnqueueTimeout < TimeSpan.FromMilliseconds(1) || options.EnqueueTimeout > TimeSpan.FromMinutes(10))
        {
            failures.Add($"Audit:EnqueueTimeout must be between 1 ms and 10 minutes; it is {options.EnqueueTimeout}.");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

/// <summary>Registration of the audit trail: recording (REST and gRPC), the writer, retention and the queries.</summary>
internal static class AuditExtensions
{
    public static IServiceCollection AddAuditTrail(this IServiceCollection services)
    {
        services.AddOptions<AuditOptions>().BindConfiguration(AuditOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AuditOptions>, AuditOptionsValidator>();
        services.AddSingleton<AuditEventStore>();
        services.AddSingleton<AuditWriter>();
        services.AddHostedService(provider => provider.GetRequiredService<AuditWriter>());
        services.AddSingleton<AuditRetention>();
        services.AddHostedService(provider => provider.GetRequiredService<AuditRetention>());
        services.AddSingleton<AuditQueries>();
        services.Configure<Grpc.AspNetCore.Server.GrpcServiceOptions>(grpc => grpc.Interceptors.Add<AuditTargetInterceptor>());
        return services;
    }

    /// <summary>
    /// The one recording point of every mutating call, REST and gRPC alike. Goes before
    /// authentication, authorization and rate limiting, so that their refusals are recorded too.
    /// </summary>
    public static IApplicationBuilder UseAuditTrail(this IApplicationBuilder app) => app.UseMiddleware<AuditMiddleware>();
}
