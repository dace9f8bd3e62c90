using System.Net;
using Cloud.Controller.Audit;
using Cloud.Controller.Data;
using Cloud.Controller.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cloud.Controller.Tests;

/// <summary>
/// Refusals the other audit tests do not reach (the rate limit, a path with no route), and the
/// writer's promises: under backpressure and at shutdown every queued event reaches PostgreSQL.
/// </summary>
[Collection(AuditCloudCollection.Name)]
public sealed class AuditRefusalTests(AuditCloudFixture cloud)
{
    [Fact]
    public async Task Calls_refused_by_the_rate_limit_or_for_want_of_a_route_are_recorded()
    {
        var since = AuditTrail.Since();
        using var tenant = await cloud.CreateTenantAsync("auditlimit");
        // All at once, so that the bucket cannot refill meanwhile: refused by validation (400) while
        // the token's bucket lasts, then by the rate limit (429).
        var statuses = await Task.WhenAll(Enumerable.Range(0, AuditCloudFixture.Burst * 3).Select(async _ =>
            (await tenant.Member.PostAsync("/v1/server-groups", """{"name":"Not A Name","policy":"anti-affinity"}""")).Status));
        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.All(statuses, s => Assert.True(s is HttpStatusCode.BadRequest or HttpStatusCode.TooManyRequests, s.ToString()));
        // No route means no endpoint and so no rate limit: answered 404 even with the bucket empty.
        var (noRoute, _) = await tenant.Member.PostAsync("/v1/no-such-thing", "{}");
        Assert.Equal(HttpStatusCode.NotFound, noRoute);

        var events = await tenant.Reader.WaitForAuditAsync($"since={since}", found => found.Any(e => e.Field("status") == "404"));

        var limited = events.Where(e => e.Field("status") == "429").ToList();
        Assert.Equal(statuses.Count(s => s == HttpStatusCode.TooManyRequests), limited.Count);
        Assert.All(limited, e => Assert.Equal(("POST /v1/server-groups", "member", tenant.Id), (e.Field("action"), e.Field("role"), e.Field("tenant"))));
        Assert.Equal(statuses.Count(s => s == HttpStatusCode.BadRequest), events.Count(e => e.Field("status") == "400"));
        Assert.Equal(limited.Count, (await tenant.Reader.AuditEventsAsync($"since={since}&result=denied")).Count);
        var unrouted = Assert.Single(events, e => e.Field("status") == "404");
        Assert.Equal(("POST (no route)", ""), (unrouted.Field("action"), unrouted.Field("targetId")));
    }

    [Fact]
    public async Task The_writer_stores_every_event_under_backpressure_and_at_shutdown()
    {
        var tenant = $"bp-{Guid.NewGuid():N}"[..15];
        await using var dataSource = NpgsqlDataSource.Create(cloud.ConnectionString);
        // A queue of 2 and batches of 3: producers wait for room all the time.
        var writer = new AuditWriter(new AuditEventStore(dataSource), Options.Create(new AuditOptions { QueueCapacity = 2, WriteBatchSize = 3 }),
            TimeProvider.System, NullLogger<AuditWriter>.Instance);
        await writer.StartAsync(CancellationToken.None);

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 100; i++)
            {
                var now = DateTimeOffset.UtcNow;
                await writer.RecordAsync(new AuditEventEntity { Id = Guid.CreateVersion7(now), Time = now, Actor = "anonymous", TenantId = tenant, Action = "POST /v1/vms", Status = 401 });
            }
        })));
        await writer.StopAsync(CancellationToken.None);

        Assert.Equal(400, await cloud.ScalarAsync("SELECT count(*) FROM audit_events WHERE tenant_id = @t", ("t", tenant)));
        Assert.Equal(0, writer.Pending);
    }
}
