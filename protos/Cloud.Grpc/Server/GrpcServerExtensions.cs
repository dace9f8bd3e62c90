using System.Diagnostics.CodeAnalysis;
using Cloud.Grpc.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cloud.Grpc;

/// <summary>Registration and endpoint mapping of gRPC services on ASP.NET Core.</summary>
public static class GrpcServerExtensions
{
    /// <summary>Adds the gRPC server. Endpoints must listen with HTTP/2 (h2c or TLS with ALPN).</summary>
    public static IServiceCollection AddGrpc(this IServiceCollection services, Action<GrpcServerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var builder = services.AddOptions<GrpcServerOptions>()
            .Validate(o => o.MaxReceiveMessageSize is null or >= 0 && o.MaxSendMessageSize is null or >= 0,
                "GrpcServerOptions.MaxReceiveMessageSize and MaxSendMessageSize must not be negative.");
        if (configure is not null)
        {
            builder.Configure(configure);
        }
        services.AddRouting();
        services.AddSingleton<GrpcServerMarker>();
        return services;
    }

    /// <summary>
    /// Maps a POST endpoint per method of <typeparamref name="TService"/>, plus (once per route
    /// builder) a fallback that answers UNIMPLEMENTED to gRPC requests for unknown methods.
    /// </summary>
    public static IEndpointConventionBuilder MapGrpcService<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TService>(this IEndpointRouteBuilder endpoints, Action<GrpcServiceBinder<TService>> bind)
        where TService : class
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(bind);
        var marker = endpoints.ServiceProvider.GetService<GrpcServerMarker>()
            ?? throw new InvalidOperationException("Call services.AddGrpc() before MapGrpcService.");
        var server = new ServerContext(
            endpoints.ServiceProvider.GetRequiredService<IOptions<GrpcServerOptions>>().Value,
            endpoints.ServiceProvider.GetService<TimeProvider>() ?? TimeProvider.System,
            endpoints.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger("Cloud.Grpc.Server"));

        var binder = new GrpcServiceBinder<TService>(server);
        bind(binder);
        var conventions = new List<IEndpointConventionBuilder>();
        foreach (var method in binder.Methods)
        {
            conventions.Add(endpoints.MapPost(method.Path, method.Handler).WithDisplayName($"gRPC {method.Path}"));
        }
        if (marker.TryClaimFallback(endpoints))
        {
            MapUnimplemented(endpoints, server);
        }
        return new CompositeConventionBuilder(conventions);
    }

    private static void MapUnimplemented(IEndpointRouteBuilder endpoints, ServerContext server)
    {
        // Only gRPC requests (POST, application/grpc*) match, and only after every other route
        // (Order = int.MaxValue), so the application's own routes are never shadowed.
        var pattern = RoutePatternFactory.Parse(
            "{service}/{method}",
            defaults: null,
            parameterPolicies: new RouteValueDictionary { ["method"] = new GrpcRequestConstraint() });
        endpoints.Map(pattern, http => ServerCallHandler.UnimplementedAsync(http, server.Logger))
            .WithDisplayName("gRPC unimplemented method")
            .WithMetadata(new HttpMethodMetadata([HttpMethods.Post]))
            .Add(b => ((RouteEndpointBuilder)b).Order = int.MaxValue);
    }

    /// <summary>Marks AddGrpc as called, and remembers where the fallback is mapped.</summary>
    internal sealed class GrpcServerMarker
    {
        private readonly HashSet<IEndpointRouteBuilder> _fallbacks = new(ReferenceEqualityComparer.Instance);

        public bool TryClaimFallback(IEndpointRouteBuilder endpoints)
        {
            lock (_fallbacks)
            {
                return _fallbacks.Add(endpoints);
            }
        }
    }

    private sealed class GrpcRequestConstraint : IRouteConstraint
    {
        public bool Match(HttpContext? httpContext, IRouter? route, string routeKey, RouteValueDictionary values, RouteDirection routeDirection)
            => httpContext is not null
               && HttpMethods.IsPost(httpContext.Request.Method)
               && Wire.GrpcProtocol.LooksLikeGrpc(httpContext.Request.ContentType);
    }

    private sealed class CompositeConventionBuilder(List<IEndpointConventionBuilder> builders) : IEndpointConventionBuilder
    {
        public void Add(Action<EndpointBuilder> convention)
        {
            foreach (var builder in builders)
            {
                builder.Add(convention);
            }
        }

        public void Finally(Action<EndpointBuilder> finallyConvention)
        {
            foreach (var builder in builders)
            {
                builder.Finally(finallyConvention);
            }
        }
    }
}
