using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Placement;

namespace Cloud.Controller.Privacy;

/// <summary>Registration of what keeps the cloud's hosts from tenants' eyes.</summary>
internal static class PrivacyExtensions
{
    public static IServiceCollection AddTenantPrivacy(this IServiceCollection services)
    {
        services.AddSingleton<HostIds>();
        services.AddSingleton<NodeNames>();
        services.AddSingleton<TenantViews>();
        services.AddGrpc()
            .AddServiceOptions<ComputeService>(o => o.Interceptors.Add<TenantViewInterceptor>())
            .AddServiceOptions<PlacementGrpcService>(o => o.Interceptors.Add<TenantViewInterceptor>());
        return services;
    }

    /// <summary>The API caller of a REST request with its tenant view, or nulls outside the API (no API token).</summary>
    public static (Caller? Caller, TenantViews? Views) TenantViewOf(HttpContext http)
        => ApiCallers.IsApiCaller(http.User) ? (ApiCallers.Of(http), http.RequestServices.GetRequiredService<TenantViews>()) : (null, null);

    /// <summary>A refusal as the caller of <paramref name="http"/> may read it.</summary>
    public static async Task<ApiException> ForCallerAsync(this ApiException e, HttpContext http)
        => TenantViewOf(http) is ({ } caller, { } views) ? await views.ApplyAsync(caller, e, http.RequestAborted) : e;
}
