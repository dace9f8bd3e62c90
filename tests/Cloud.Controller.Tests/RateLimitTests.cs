using System.Net;
using System.Text.Json;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>
/// The abuse limits: requests per token (REST /v1, gRPC Compute and Placement) and failed
/// authentications per source address, on a controller with low limits.
/// </summary>
[Collection(RateLimitCloudCollection.Name)]
public sealed class RateLimitTests(RateLimitCloudFixture cloud) : IDisposable
{
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    public void Dispose() => _channel.Dispose();

    [Fact]
    public async Task A_burst_over_the_rate_gets_429_with_retry_after_and_other_tokens_are_unaffected()
    {
        using var client = cloud.ClientFor(cloud.RestToken);
        HttpResponseMessage? refused = null;
        for (var i = 0; i < 4 * RateLimitCloudFixture.Burst && refused is null; i++)
        {
            var response = await client.GetAsync("/v1/vms");
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                refused = response;
            }
            else
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                response.Dispose();
            }
        }
        Assert.NotNull(refused);
        using (refused)
        {
            var retryAfter = refused.Headers.RetryAfter?.Delta;
            Assert.NotNull(retryAfter);
            Assert.InRange(retryAfter.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5));
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            using var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
            Assert.Equal(429, problem.RootElement.GetProperty("status").GetInt32());
            Assert.Equal("RESOURCE_EXHAUSTED", problem.RootElement.GetProperty("code").GetString());
            Assert.Equal("RATE_LIMITED", problem.RootElement.GetProperty("details").GetProperty("reason").GetString());

            // Another token of the same tenant has its own bucket.
            using var other = cloud.ClientFor(cloud.OtherToken);
            Assert.Equal(HttpStatusCode.OK, (await other.GetAsync("/v1/vms")).StatusCode);

            // After Retry-After, the token works again.
            await Task.Delay(retryAfter.Value);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/vms")).StatusCode);
        }
    }

    [Fact]
    public async Task A_burst_over_grpc_gets_resource_exhausted_with_retry_after_on_compute_and_placement()
    {
        var compute = new Compute.ComputeClient(_channel);
        RpcException? refused = null;
        for (var i = 0; i < 4 * RateLimitCloudFixture.Burst && refused is null; i++)
        {
            try
            {
                await compute.ListVmsAsync(new ListVmsRequest(), Tenancy.Bearer(cloud.GrpcToken));
            }
            catch (RpcException e)
            {
                refused = e;
            }
        }
        Assert.NotNull(refused);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        var retryAfter = refused.Trailers.GetValue("retry-after");
        Assert.NotNull(retryAfter);
        Assert.InRange(int.Parse(retryAfter, System.Globalization.CultureInfo.InvariantCulture), 1, 5);

        // Placement shares the token's bucket: spent too.
        var placement = new Cloud.Contracts.Compute.V1.Placement.PlacementClient(_channel);
        var placementRefused = await Assert.ThrowsAsync<RpcException>(
            () => placement.ListPlacementDecisionsAsync(new ListPlacementDecisionsRequest(), Tenancy.Bearer(cloud.GrpcToken)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, placementRefused.StatusCode);
    }

    /// <summary>
    /// Only failures count against an address; once it has used them up, a token the controller
    /// does not know as valid (a bad one, or a valid one it never saw) is refused before the
    /// database is asked, while configured tokens and tokens that authenticated before still work.
    /// </summary>
    [Fact]
    public async Task Failed_authentications_from_one_address_are_throttled_and_valid_tokens_still_work()
    {
        using var guesser = cloud.ClientFor("cloud_guessed-token");
        for (var i = 0; i < RateLimitCloudFixture.FailedAuthPerMinute; i++)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await guesser.GetAsync("/v1/vms")).StatusCode);
        }

        using var throttled = await guesser.GetAsync("/v1/vms");
        Assert.Equal(HttpStatusCode.TooManyRequests, throttled.StatusCode);
        Assert.NotNull(throttled.Headers.RetryAfter?.Delta);
        using (var problem = JsonDocument.Parse(await throttled.Content.ReadAsStringAsync()))
        {
            Assert.Equal("RESOURCE_EXHAUSTED", problem.RootElement.GetProperty("code").GetString());
            Assert.Equal("AUTH_THROTTLED", problem.RootElement.GetProperty("details").GetProperty("reason").GetString());
        }
        var grpc = await Assert.ThrowsAsync<RpcException>(
            () => new Compute.ComputeClient(_channel).ListVmsAsync(new ListVmsRequest(), Tenancy.Bearer("cloud_another-guess")).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, grpc.StatusCode);
        Assert.NotNull(grpc.Trailers.GetValue("retry-after"));

        // Valid tokens from the same address: the configured operator token and a token seen before.
        await AssertAuthenticatedAsync(cloud.Http);
        using var known = cloud.ClientFor(cloud.KnownToken);
        await AssertAuthenticatedAsync(known);

        // A valid token never seen on this controller waits like a guess: the database is not asked.
        using var unseen = cloud.ClientFor(cloud.UnusedToken);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await unseen.GetAsync("/v1/vms")).StatusCode);
    }

    /// <summary>GET /v1/vms answers 200, once the token's own rate limit (not the address's failures) allows.</summary>
    private static async Task AssertAuthenticatedAsync(HttpClient client)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var response = await client.GetAsync("/v1/vms");
            if (response.StatusCode != HttpStatusCode.TooManyRequests || attempt > 10)
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                return;
            }
            using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("RATE_LIMITED", problem.RootElement.GetProperty("details").GetProperty("reason").GetString());
            await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1));
        }
    }
}
