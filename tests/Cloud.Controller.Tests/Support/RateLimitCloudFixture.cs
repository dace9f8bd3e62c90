using System.Net;
using System.Net.Http.Headers;

namespace Cloud.Controller.Tests.Support;

/// <summary>
/// A cloud whose controller allows each token <see cref="PerSecond"/> requests a second (a burst of
/// <see cref="Burst"/>) and each source address <see cref="FailedAuthPerMinute"/> failed
/// authentications a minute, low enough that a test goes over them on purpose. Its own
/// collection, so that no other test's calls count against them. Its tokens are made (and used
/// once, so that the controller knows them as valid) before any test runs.
/// </summary>
public sealed class RateLimitCloudFixture : CloudFixture
{
    public const int PerSecond = 2;
    public const int Burst = 5;
    public const int FailedAuthPerMinute = 5;

    /// <summary>Member tokens of one tenant, one per test that spends its budget, each used once already.</summary>
    public string RestToken { get; private set; } = "";
    public string OtherToken { get; private set; } = "";
    public string GrpcToken { get; private set; } = "";
    public string KnownToken { get; private set; } = "";

    /// <summary>A valid token never presented to the controller: not known as valid.</summary>
    public string UnusedToken { get; private set; } = "";

    protected override Dictionary<string, string?> ControllerSettings() => new()
    {
        ["RateLimits:PerTokenRequestsPerSecond"] = PerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RateLimits:PerTokenBurst"] = Burst.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RateLimits:FailedAuthPerMinute"] = FailedAuthPerMinute.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        var tenant = $"rl-{Guid.NewGuid():N}"[..12];
        await SendPatientlyAsync(Http, HttpMethod.Post, "/v1/tenants",
            $$$"""{"id":"{{{tenant}}}","displayName":"Rate limits","quota":{"instances":5,"vcpus":5,"memoryMb":"1000","diskGb":"10","snapshots":1}}""");
        RestToken = await NewTokenAsync(tenant);
        OtherToken = await NewTokenAsync(tenant);
        GrpcToken = await NewTokenAsync(tenant);
        KnownToken = await NewTokenAsync(tenant);
        UnusedToken = await NewTokenAsync(tenant, use: false);
    }

    private async Task<string> NewTokenAsync(string tenant, bool use = true)
    {
        using var created = await SendPatientlyAsync(Http, HttpMethod.Post, "/v1/tokens",
            $$"""{"tenant":"{{tenant}}","name":"rl-token","role":"member","ttlDays":1}""");
        using var doc = System.Text.Json.JsonDocument.Parse(await created.Content.ReadAsStringAsync());
        var token = doc.RootElement.GetProperty("secret").GetString()!;
        if (use)
        {
            using var client = NewHttpClient();
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            (await SendPatientlyAsync(client, HttpMethod.Get, "/v1/vms")).Dispose();
        }
        return token;
    }

    /// <summary>Sends until the answer is not 429, waiting as Retry-After says; fails on any other error.</summary>
    private static async Task<HttpResponseMessage> SendPatientlyAsync(HttpClient http, HttpMethod method, string path, string? json = null)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var request = new HttpRequestMessage(method, path);
            if (json is not null)
            {
                request.Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
            }
            var response = await http.SendAsync(request);
            if (response.StatusCode != HttpStatusCode.TooManyRequests || attempt > 20)
            {
                Assert.True(response.IsSuccessStatusCode, $"{method} {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                return response;
            }
            var wait = response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1);
            response.Dispose();
            await Task.Delay(wait);
        }
    }
}

[CollectionDefinition(Name)]
public sealed class RateLimitCloudCollection : ICollectionFixture<RateLimitCloudFixture>
{
    public const string Name = "rate-limit-cloud";
}
