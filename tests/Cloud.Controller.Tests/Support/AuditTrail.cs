using System.Net;
using System.Text.Json;

namespace Cloud.Controller.Tests.Support;

/// <summary>Reading the audit trail in tests: it is written just after each call, so tests poll it with a deadline.</summary>
internal static class AuditTrail
{
    /// <summary>Every event <paramref name="http"/> may see under <paramref name="query"/> (all pages), newest first.</summary>
    public static async Task<List<JsonElement>> AuditEventsAsync(this HttpClient http, string query)
    {
        var events = new List<JsonElement>();
        var token = "";
        while (true)
        {
            var (status, page) = await http.GetJsonAsync($"/v1/audit?{query}&page_size=500&page_token={Uri.EscapeDataString(token)}");
            if (status == HttpStatusCode.TooManyRequests)
            {
                // A fixture with a low rate limit (AuditCloudFixture): the reads wait their turn.
                await Task.Delay(TimeSpan.FromMilliseconds(500));
                continue;
            }
            Assert.True(status == HttpStatusCode.OK, $"GET /v1/audit?{query}: {(int)status} {page}");
            events.AddRange(page.TryGetProperty("events", out var list) ? list.EnumerateArray().Select(e => e.Clone()) : []);
            token = page.TryGetProperty("nextPageToken", out var next) ? next.GetString() ?? "" : "";
            if (token.Length == 0)
            {
                break;
            }
        }
        return events;
    }

    /// <summary>Polls until <paramref name="done"/> holds for what <paramref name="http"/> sees; the events then.</summary>
    public static async Task<List<JsonElement>> WaitForAuditAsync(this HttpClient http, string query, Func<List<JsonElement>, bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            var events = await http.AuditEventsAsync(query);
            if (done(events) || DateTime.UtcNow > deadline)
            {
                return events;
            }
            await Task.Delay(50);
        }
    }

    /// <summary>A field of an event as text; absent (proto3 JSON leaves defaults out) is "".</summary>
    public static string Field(this JsonElement auditEvent, string name)
        => auditEvent.TryGetProperty(name, out var value) ? value.ValueKind == JsonValueKind.Number ? value.GetRawText() : value.GetString() ?? "" : "";

    /// <summary>A one-line picture of an event, for assertion messages.</summary>
    public static string Describe(IEnumerable<JsonElement> events)
        => string.Join("\n", events.Select(e => $"{e.Field("action")} actor={e.Field("actor")} role={e.Field("role")} tenant={e.Field("tenant")} target={e.Field("targetId")} status={e.Field("status")} grpc={e.Field("grpcStatus")}"));

    /// <summary>
    /// Now, as RFC 3339 to the microsecond (rounded down): the controller runs in this process and
    /// reads the same clock, so every call made after this is at or after it.
    /// </summary>
    public static string Since() => DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);
}
