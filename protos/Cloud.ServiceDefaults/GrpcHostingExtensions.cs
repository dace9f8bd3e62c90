using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cloud.ServiceDefaults;

/// <summary>
/// What every Cloud gRPC server offers the same way: server reflection (so grpcurl and any gRPC
/// tool can list and call the services), and health split in two.
/// <list type="bullet">
/// <item>Liveness: the process answers. A failing liveness probe restarts the process, so it
/// checks nothing outside it; a database outage must not restart every controller.</item>
/// <item>Readiness: the process can do its work (the controller: PostgreSQL answers and the
/// schema is current; the agent: its hypervisor backend answers). A failing readiness probe only
/// takes the process out of rotation.</item>
/// </list>
/// Both are served as grpc.health.v1 (service "" and "readiness" are readiness, "liveness" is
/// liveness, for Kubernetes' gRPC probes) and, where the listener speaks HTTP/1.1, as
/// GET /healthz/live and /healthz/ready.
/// </summary>
public static class GrpcHostingExtensions
{
    /// <summary>Tag of the checks that readiness runs.</summary>
    public const string Ready = "ready";

    /// <summary>Tag of the checks that liveness runs.</summary>
    public const string Live = "live";

    /// <summary>Adds grpc-dotnet with reflection and health; returns the health-check builder so the caller adds its readiness checks.</summary>
    public static IHealthChecksBuilder AddCloudGrpc(this IServiceCollection services, Action<Grpc.AspNetCore.Server.GrpcServiceOptions>? configure = null)
    {
        services.AddGrpc(options =>
        {
            // Errors carry what the caller needs in their status and details; a stack trace is
            // for the server's log, never for the wire.
            options.EnableDetailedErrors = false;
            options.Interceptors.Add<RpcErrorInterceptor>();
            configure?.Invoke(options);
        });
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks(options =>
        {
            options.Services.Map("", r => r.Tags.Contains(Ready));
            options.Services.Map("readiness", r => r.Tags.Contains(Ready));
            options.Services.Map("liveness", r => r.Tags.Contains(Live));
        });
        return services.AddHealthChecks().AddCheck("process", () => HealthCheckResult.Healthy(), tags: [Live]);
    }

    /// <summary>Maps reflection and grpc.health.v1, and the HTTP probes when <paramref name="httpProbes"/>.</summary>
    public static IEndpointRouteBuilder MapCloudGrpc(this IEndpointRouteBuilder app, bool httpProbes)
    {
        app.MapGrpcReflectionService();
        app.MapGrpcHealthChecksService();
        if (httpProbes)
        {
            app.MapHealthChecks("/healthz/live", new HealthCheckOptions { Predicate = c => c.Tags.Contains(Live) });
            app.MapHealthChecks("/healthz/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains(Ready) });
            // The path older probes and scripts use: liveness.
            app.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = c => c.Tags.Contains(Live) });
        }
        return app;
    }
}
