using System.Globalization;
using System.Net;
using Microsoft.Extensions.Options;

namespace Cloud.ServiceDefaults;

/// <summary>Section "Telemetry", the same in the controller and the agent.</summary>
public sealed class TelemetryOptions
{
    public const string SectionName = "Telemetry";

    /// <summary>
    /// Where traces and metrics go over OTLP (gRPC), such as http://collector:4317. Unset:
    /// OTEL_EXPORTER_OTLP_ENDPOINT; neither: no OTLP export and no tracing at all.
    /// </summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>
    /// IP address and port of the Prometheus scrape listener, such as 127.0.0.1:9464: HTTP/1.1,
    /// serving GET /metrics only, on a port no other listener of the process uses. Unset (the
    /// default): no scrape listener.
    /// </summary>
    public string? MetricsListen { get; set; }

    /// <summary>
    /// SHA-256 (hex) of the scrape token: a scrape must send <c>Authorization: Bearer &lt;token&gt;</c>.
    /// Unset: no token is asked for, and <see cref="MetricsListen"/> must then be a loopback
    /// address (the process refuses to start otherwise).
    /// </summary>
    public string? MetricsTokenSha256 { get; set; }

    /// <summary>
    /// The controller reports per-node series (capacity used and total per resource class,
    /// heartbeat lag) only while it knows at most this many nodes; above, only cloud-wide ones.
    /// Three resource classes make three series per node and instrument, and OpenTelemetry keeps at
    /// most 2,000 per instrument; at 10,000 nodes per-node series would also be most of every
    /// scrape. 0 turns them off; at most 600. Default 500.
    /// </summary>
    public int PerNodeSeriesMaxNodes { get; set; } = 500;

    /// <summary>"127.0.0.1:9464" or "[::1]:9464"; null for an empty, unparsable or port-0 value.</summary>
    public static IPEndPoint? TryParseListen(string? listen)
        => !string.IsNullOrWhiteSpace(listen) && IPEndPoint.TryParse(listen, out var endpoint) && endpoint.Port != 0
            ? endpoint
            : null;
}

/// <summary>The scrape listener's rules; every message names the setting to change.</summary>
internal sealed class TelemetryOptionsValidator : IValidateOptions<TelemetryOptions>
{
    private const int MaxPerNodeSeriesNodes = 600;

    public ValidateOptionsResult Validate(string? name, TelemetryOptions options)
    {
        var failures = new List<string>();
        if (!string.IsNullOrWhiteSpace(options.OtlpEndpoint) && !Uri.TryCreate(options.OtlpEndpoint, UriKind.Absolute, out _))
        {
            failures.Add($"Telemetry:OtlpEndpoint '{options.OtlpEndpoint}' must be an absolute URL, such as http://127.0.0.1:4317.");
        }
        if (options.PerNodeSeriesMaxNodes is < 0 or > MaxPerNodeSeriesNodes)
        {
            failures.Add($"Telemetry:PerNodeSeriesMaxNodes must be between 0 and {MaxPerNodeSeriesNodes} (three series per node stay under OpenTelemetry's 2,000 per instrument), not {options.PerNodeSeriesMaxNodes}.");
        }
        var hash = options.MetricsTokenSha256;
        if (!string.IsNullOrEmpty(hash) && (hash.Length != 64 || !hash.All(Uri.IsHexDigit)))
        {
            failures.Add("Telemetry:MetricsTokenSha256 must be 64 hexadecimal characters: the SHA-256 of the scrape token, such as `printf %s \"$TOKEN\" | sha256sum`.");
        }
        if (!string.IsNullOrWhiteSpace(options.MetricsListen))
        {
            var endpoint = TelemetryOptions.TryParseListen(options.MetricsListen);
            if (endpoint is null)
            {
                failures.Add($"Telemetry:MetricsListen '{options.MetricsListen}' must be an IP address and port, such as 127.0.0.1:9464.");
            }
            else if (string.IsNullOrEmpty(hash) && !IPAddress.IsLoopback(endpoint.Address))
            {
                failures.Add(string.Create(CultureInfo.InvariantCulture,
                    $"Telemetry:MetricsListen '{options.MetricsListen}' is not a loopback address, and Telemetry:MetricsTokenSha256 is not set: anyone who reaches that address could read /metrics. Set Telemetry:MetricsTokenSha256 to the SHA-256 (hex) of a scrape token, or listen on 127.0.0.1 or [::1]."));
            }
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
