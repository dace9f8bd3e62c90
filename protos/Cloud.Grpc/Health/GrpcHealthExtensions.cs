using Cloud.Grpc.Health.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Cloud.Grpc;

/// <summary>Registration of the standard grpc.health.v1.Health service.</summary>
public static class GrpcHealthExtensions
{
    /// <summary>Registers the singleton <see cref="GrpcHealthService"/> that holds the statuses.</summary>
    public static IServiceCollection AddGrpcHealthChecks(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton<GrpcHealthService>();
        return services;
    }

    /// <summary>Maps grpc.health.v1.Health/Check and /Watch.</summary>
    public static IEndpointConventionBuilder MapGrpcHealthService(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        if (endpoints.ServiceProvider.GetService<GrpcHealthService>() is null)
        {
            throw new InvalidOperationException("Call services.AddGrpcHealthChecks() before MapGrpcHealthService.");
        }
        return endpoints.MapGrpcService<GrpcHealthService>(binder =>
        {
            binder.AddUnary(HealthGrpc.CheckMethod, (service, request, context) => service.CheckAsync(request, context));
            binder.AddServerStreaming(HealthGrpc.WatchMethod, (service, request, stream, context) => service.WatchAsync(request, stream, context));
        });
    }
}
