using Cloud.ServiceDefaults;
using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Cloud.Controller.Hosting;

/// <summary>The controller's telemetry: every process's (ServiceDefaults), plus Npgsql's spans and metrics.</summary>
internal static class ControllerTelemetry
{
    public static IServiceCollection AddControllerTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddCloudTelemetry(configuration, "cloud-controller");
        // Applied only when ServiceDefaults turned the provider on: no SQL span is recorded without
        // an exporter.
        services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddNpgsql());
        services.ConfigureOpenTelemetryMeterProvider(metrics => metrics.AddNpgsqlInstrumentation());
        return services;
    }
}
