using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Cloud.ServiceDefaults;

/// <summary>
/// OpenTelemetry for a Cloud process, hosted by OpenTelemetry.Extensions.Hosting: the providers
/// start with the host and flush when it stops.
/// </summary>
public static class TelemetryExtensions
{
    /// <summary>Every ActivitySource and Meter of the project is named "Cloud.*".</summary>
    public const string SourcePrefix = "Cloud.";

    /// <summary>
    /// Traces and metrics of the project's own sources and meters plus ASP.NET Core, HttpClient,
    /// the gRPC client and the runtime.
    /// <list type="bullet">
    /// <item>Tracing is on only when there is an OTLP endpoint (<c>Telemetry:OtlpEndpoint</c>, or
    /// OTEL_EXPORTER_OTLP_ENDPOINT): without one, every span would still be created and recorded
    /// for nobody (about 2 KiB and a few microseconds per placement).</item>
    /// <item>Metrics are on when there is an OTLP endpoint or a scrape listener
    /// (<c>Telemetry:MetricsListen</c>, see <see cref="MetricsListenerExtensions"/>).</item>
    /// </list>
    /// A process adds its own instrumentation with
    /// <c>services.ConfigureOpenTelemetryTracerProvider(...)</c> (the controller adds Npgsql's),
    /// which applies only when tracing is on.
    /// </summary>
    public static IOpenTelemetryBuilder AddCloudTelemetry(this IServiceCollection services, IConfiguration configuration, string serviceName)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<TelemetryOptions>().BindConfiguration(TelemetryOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<TelemetryOptions>, TelemetryOptionsValidator>();

        var endpoint = configuration[$"{TelemetryOptions.SectionName}:{nameof(TelemetryOptions.OtlpEndpoint)}"];
        if (string.IsNullOrWhiteSpace(endpoint))
        {
            endpoint = configuration["OTEL_EXPORTER_OTLP_ENDPOINT"];
        }
        var otlp = string.IsNullOrWhiteSpace(endpoint) ? null : new Uri(endpoint);
        // An unparsable address is refused by the validator at start; nothing listens until then.
        var scrape = TelemetryOptions.TryParseListen(configuration[$"{TelemetryOptions.SectionName}:{nameof(TelemetryOptions.MetricsListen)}"]);

        var builder = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName, serviceVersion: typeof(TelemetryExtensions).Assembly.GetName().Version?.ToString()));
        if (otlp is not null)
        {
            builder.WithTracing(tracing => tracing.AddCloudInstrumentation().AddOtlpExporter(o => o.Endpoint = otlp));
        }
        if (otlp is not null || scrape is not null)
        {
            builder.WithMetrics(metrics =>
            {
                metrics.AddCloudInstrumentation();
                if (otlp is not null)
                {
                    metrics.AddOtlpExporter(o => o.Endpoint = otlp);
                }
                if (scrape is not null)
                {
                    metrics.AddPrometheusExporter();
                }
            });
        }
        if (scrape is not null)
        {
            // A listener of its own, HTTP/1.1 (Prometheus scrapes over HTTP/1.1; the agent's gRPC
            // listener is HTTP/2 only), that serves /metrics and nothing else.
            services.Configure<KestrelServerOptions>(kestrel => kestrel.Listen(scrape, listen => listen.Protocols = HttpProtocols.Http1));
        }
        return builder;
    }

    /// <summary>
    /// The project's spans and the instrumentations every Cloud process traces with: ASP.NET Core
    /// (server spans, REST and gRPC), HttpClient, and the gRPC client (one client span per call;
    /// the HttpClient span under it is suppressed, the traceparent still goes on the wire).
    /// </summary>
    public static TracerProviderBuilder AddCloudInstrumentation(this TracerProviderBuilder tracing)
        => tracing
            .AddSource(SourcePrefix + "*")
            .AddAspNetCoreInstrumentation()
            .AddHttpClientInstrumentation()
            .AddGrpcClientInstrumentation(o => o.SuppressDownstreamInstrumentation = true);

    /// <summary>The project's meters plus ASP.NET Core's, HttpClient's and the runtime's.</summary>
    public static MeterProviderBuilder AddCloudInstrumentation(this MeterProviderBuilder metrics)
        => metrics
            .AddMeter(SourcePrefix + "*")
            .AddAspNetCoreInstrumentation()
            .AddHttpClientInstrumentation()
            .AddRuntimeInstrumentation();
}
