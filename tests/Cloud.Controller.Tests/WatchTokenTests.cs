using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>
/// A watch outlives the authentication of the request that opened it: it ends, over Server-Sent
/// Events with a last "error" event and over gRPC with UNAUTHENTICATED, once its token is revoked
/// or expires, and keeps running while its token stays valid.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class WatchTokenTests(CloudFixture cloud) : IDisposable
{
    /// <summary>Auth:TokenRecheckInterval (2 s by default), the 250 ms poll, and slack for a loaded machine.</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(8);

    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    [Fact]
    public async Task Revoking_a_token_ends_its_watches_on_both_wires_and_only_its_own()
    {
        using var tenant = await cloud.CreateTenantAsync("wrevoke");
        var (tokenId, secret) = await CreateTokenAsync(tenant.Id);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var doomed = await OpenSseAsync(secret, deadline.Token);
        using var kept = await OpenSseAsync(tenant.ReaderToken, deadline.Token);
        var compute = new Compute.ComputeClient(_channel);
        using var doomedCall = compute.WatchVms(new WatchVmsRequest(), new CallOptions(Tenancy.Bearer(secret).Headers, cancellationToken: deadline.Token));
        using var keptCall = compute.WatchVms(new WatchVmsRequest(), new CallOptions(Tenancy.Bearer(tenant.ReaderToken).Headers, cancellationToken: deadline.Token));
        var doomedGrpcEnd = Assert.ThrowsAsync<RpcException>(() => doomedCall.ResponseStream.MoveNext(deadline.Token));
        var keptGrpcNext = keptCall.ResponseStream.MoveNext(deadline.Token);
        // Both watches are open and authenticated before the revocation.
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.False(doomedGrpcEnd.IsCompleted);

        var revoked = Stopwatch.StartNew();
        using (var revoke = await cloud.Http.DeleteAsync($"/v1/tokens/{tokenId}"))
        {
            Assert.True(revoke.IsSuccessStatusCode, await revoke.Content.ReadAsStringAsync());
        }

        var problem = await NextErrorEventAsync(doomed.Reader, deadline.Token);
        Assert.True(revoked.Elapsed < Bound, $"The SSE watch ended {revoked.Elapsed} after the revocation.");
        Assert.Equal("UNAUTHENTICATED", problem.Str("code"));
        Assert.Equal(401, problem.GetProperty("status").GetInt32());
        Assert.Equal("", (await doomed.Reader.ReadToEndAsync(deadline.Token)).Trim());
        var error = await doomedGrpcEnd;
        Assert.True(revoked.Elapsed < Bound, $"The gRPC watch ended {revoked.Elapsed} after the revocation.");
        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);

        // The watches of the reader's token, still valid, outlive several re-checks and still deliver.
        await Task.Delay(TimeSpan.FromSeconds(6));
        Assert.False(keptGrpcNext.IsCompleted);
        var vmId = await tenant.Member.CreateRunningVmAsync("after-revoke");
        Assert.True(await keptGrpcNext);
        Assert.Equal(vmId, keptCall.ResponseStream.Current.Id);
        Assert.Equal(vmId, (await NextVmEventAsync(kept.Reader, deadline.Token)).Str("id"));
    }

    [Fact]
    public async Task A_watch_ends_when_its_token_expires()
    {
        // Tokens are made with a ttl in days (ttl_days), so the expiry is brought near behind the API's back.
        using var tenant = await cloud.CreateTenantAsync("wexpire");
        var (tokenId, secret) = await CreateTokenAsync(tenant.Id);
        Assert.Equal(1, await cloud.ScalarAsync(
            "WITH u AS (UPDATE api_tokens SET expires_at = now() + interval '3 seconds' WHERE id = @id RETURNING 1) SELECT count(*) FROM u",
            ("id", Guid.Parse(tokenId))));
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var opened = Stopwatch.StartNew();
        using var sse = await OpenSseAsync(secret, deadline.Token);
        using var call = new Compute.ComputeClient(_channel).WatchVms(new WatchVmsRequest(), new CallOptions(Tenancy.Bearer(secret).Headers, cancellationToken: deadline.Token));
        var grpcEnd = Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(deadline.Token));

        Assert.Equal("UNAUTHENTICATED", (await NextErrorEventAsync(sse.Reader, deadline.Token)).Str("code"));
        Assert.Equal(StatusCode.Unauthenticated, (await grpcEnd).StatusCode);
        Assert.True(opened.Elapsed < TimeSpan.FromSeconds(3) + Bound, $"The watches ended {opened.Elapsed} after they opened, with 3 s left on the token.");
        Assert.True(opened.Elapsed >= TimeSpan.FromSeconds(2.5), $"The watches ended after {opened.Elapsed}, before the token expired.");
    }

    private async Task<(string Id, string Secret)> CreateTokenAsync(string tenant)
    {
        var (status, token) = await cloud.Http.PostAsync("/v1/tokens", $$"""{"tenant":"{{tenant}}","name":"watcher","role":"member","ttlDays":1}""");
        Assert.True(status == HttpStatusCode.Created, token.ToString());
        return (token.Str("id"), token.Str("secret"));
    }

    private async Task<SseStream> OpenSseAsync(string token, CancellationToken cancellationToken)
    {
        var client = cloud.ClientFor(token);
        client.Timeout = Timeout.InfiniteTimeSpan;
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/vms/watch");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return new SseStream(client, response, new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken)));
    }

    private static async Task<JsonElement> NextErrorEventAsync(StreamReader reader, CancellationToken cancellationToken)
    {
        string? eventName = null;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                eventName = line["event: ".Length..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && eventName == "error")
            {
                return JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone();
            }
        }
        throw new EndOfStreamException("The event stream ended without an error event.");
    }

    private static async Task<JsonElement> NextVmEventAsync(StreamReader reader, CancellationToken cancellationToken)
    {
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                return JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone();
            }
        }
        throw new EndOfStreamException("The event stream ended.");
    }

    public void Dispose() => _channel.Dispose();

    private sealed record SseStream(HttpClient Client, HttpResponseMessage Response, StreamReader Reader) : IDisposable
    {
        public void Dispose()
        {
            Reader.Dispose();
            Response.Dispose();
            Client.Dispose();
        }
    }
}
