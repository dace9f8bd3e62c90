using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace Cloud.Controller.Tests.Support;

/// <summary>
/// The QEMU cloud with the Prometheus scrape listener on the controller and on each agent, each
/// asking for the scrape token. A cloud of its own, so that what its metrics count is what its
/// tests did.
/// </summary>
public sealed class TelemetryCloudFixture : QemuCloudFixture
{
    public const string ScrapeToken = "test-scrape-token";

    public static string ScrapeTokenSha256 { get; } = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ScrapeToken)));

    /// <summary>The controller's scrape listener.</summary>
    public Uri ControllerMetricsUrl { get; } = new($"http://127.0.0.1:{Ports.Free(IPAddress.Loopback)}");

    /// <summary>Agent n's (1-based, at [n - 1]) scrape listener.</summary>
    public List<Uri> AgentMetricsUrls { get; } = [];

    protected override Dictionary<string, string?> ControllerSettings() => new()
    {
        ["Telemetry:MetricsListen"] = $"127.0.0.1:{ControllerMetricsUrl.Port}",
        ["Telemetry:MetricsTokenSha256"] = ScrapeTokenSha256,
    };

    protected override Dictionary<string, string?> AgentBackendSettings(int n, IPAddress address)
    {
        var settings = base.AgentBackendSettings(n, address);
        var port = Ports.Free(address);
        AgentMetricsUrls.Add(new Uri($"http://{address}:{port}"));
        settings["Agent:NodeName"] = settings["Agent:Qemu:NodeName"] = $"otel-node-{n}";
        settings["Telemetry:MetricsListen"] = $"{address}:{port}";
        settings["Telemetry:MetricsTokenSha256"] = ScrapeTokenSha256;
        return settings;
    }
}

[CollectionDefinition(Name)]
public sealed class TelemetryCloudCollection : ICollectionFixture<TelemetryCloudFixture>
{
    public const string Name = "telemetry-cloud";
}
