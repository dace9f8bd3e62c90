using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Cloud.ServiceDefaults;

/// <summary>
/// The Prometheus scrape endpoint, on the listener of <see cref="TelemetryOptions.MetricsListen"/>
/// only: GET /metrics there, with the scrape token when one is configured; every other path on
/// that listener is 404, and /metrics on the process's other listeners does not exist.
/// </summary>
/// <remarks>
/// The token check is a few lines of middleware in the scrape branch rather than an ASP.NET Core
/// authentication scheme: the scrape token is not a caller of the API (no project, no role), and a
/// scheme of its own would compete with the API's schemes for the default.
/// </remarks>
public static class MetricsListenerExtensions
{
    /// <summary>The scrape path.</summary>
    public const string Path = "/metrics";

    /// <summary>
    /// Serves /metrics on the scrape listener, when <c>Telemetry:MetricsListen</c> is set. Call it
    /// first, so that nothing else of the process answers on that listener.
    /// </summary>
    public static WebApplication UseCloudMetricsListener(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var scrape = TelemetryOptions.TryParseListen(app.Configuration[$"{TelemetryOptions.SectionName}:{nameof(TelemetryOptions.MetricsListen)}"]);
        if (scrape is null)
        {
            return app;
        }
        var port = scrape.Port;
        var options = app.Services.GetRequiredService<IOptions<TelemetryOptions>>();
        app.UseOpenTelemetryPrometheusScrapingEndpoint(
            meterProvider: null,
            predicate: context => context.Connection.LocalPort == port && context.Request.Path == Path,
            path: null,
            configureBranchedPipeline: branch => branch.Use((context, next) => Authorized(context, options.Value.MetricsTokenSha256) ? next(context) : Refuse(context)),
            optionsName: null);
        app.Use((context, next) =>
        {
            if (context.Connection.LocalPort != port)
            {
                return next(context);
            }
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });
        return app;
    }

    private static bool Authorized(HttpContext context, string? tokenSha256)
    {
        if (string.IsNullOrEmpty(tokenSha256))
        {
            // Only possible on a loopback listener (TelemetryOptionsValidator).
            return true;
        }
        var header = context.Request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) || header.Length == scheme.Length)
        {
            return false;
        }
        Span<byte> actual = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(header[scheme.Length..].Trim()), actual);
        Span<byte> expected = stackalloc byte[SHA256.HashSizeInBytes];
        return Convert.FromHexString(tokenSha256, expected, out _, out var written) == System.Buffers.OperationStatus.Done
            && written == expected.Length
            && CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    private static Task Refuse(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = "Bearer realm=\"metrics\"";
        return Task.CompletedTask;
    }
}
