using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Cloud.ServiceDefaults;

/// <summary>
/// OpenTelemetry for a Cloud process, set up without OpenTelemetry.Extensions.Hosting: the
/// providers are singletons the container disposes (flushing) at shutdown.
/// </summary>
public static class TelemetryExtensions
{
    /// <summary>Every ActivitySource and Meter of the project is named "Cloud.*".</summary>
    public const string SourcePrefix = "Cloud.";

    /// <summary>
    /// Traces and metrics of the project's own sources plus ASP.NET Core and HttpClient, exported
    /// over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or Telemetry:OtlpEndpoint) is set. Without an
    /// endpoint nothing listens: every span would still be created and recorded, for nobody
    /// (about 2 KiB and a few microseconds per placement).
    /// </summary>
    public static IServiceCollection AddCloudTelemetry(this IServiceCollection services, IConfiguration configuration, string serviceName)
    {
        var endpoint = configuration["Telemetry:OtlpEndpoint"] ?? configuration["OTEL_EXPORTER_OTLP_ENDPOINT"];
        if (string.IsNullOrWhiteSpace(endpoint))
        {
            return services;
        }
        var resource = ResourceBuilder.CreateDefault().AddService(serviceName, serviceVersion: typeof(TelemetryExtensions).Assembly.GetName().Version?.ToString());

        var tracing = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(resource)
            .AddSource(SourcePrefix + "*", "Microsoft.AspNetCore", "System.Net.Http");
        var metrics = Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(resource)
            .AddMeter(SourcePrefix + "*", "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "System.Net.Http");
        if (!string.IsNullOrWhiteSpace(endpoint))
        {
            var uri = new Uri(endpoint);
            tracing.AddOtlpExporter(o => o.Endpoint = uri);
            metrics.AddOtlpExporter(o => o.Endpoint = uri);
        }

        services.AddSingleton(tracing.Build());
        services.AddSingleton(metrics.Build());
        services.AddHostedService<TelemetryActivation>();
        return services;
    }

    /// <summary>Resolves the providers at start so that they listen from the first request.</summary>
    private sealed class TelemetryActivation(TracerProvider tracer, MeterProvider meter) : Microsoft.Extensions.Hosting.IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            GC.KeepAlive(tracer);
            GC.KeepAlive(meter);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
