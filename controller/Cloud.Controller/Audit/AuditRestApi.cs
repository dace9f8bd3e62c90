using System.Globalization;
using Cloud.Controller.Api;
using Cloud.Contracts.Compute.V1;
using Google.Protobuf.WellKnownTypes;

namespace Cloud.Controller.Audit;

/// <summary>GET /v1/audit: the audit trail, filtered and paginated like the other lists.</summary>
internal static class AuditRestApi
{
    public static void MapAudit(this RouteGroupBuilder v1)
        => v1.MapGet("/audit", async (HttpContext http, AuditQueries audit, string? page_size, string? page_token, string? tenant, string? actor,
            string? action, string? since, string? until, string? result, CancellationToken ct) =>
        {
            var request = new ListAuditEventsRequest
            {
                PageSize = PageSize(page_size),
                PageToken = page_token ?? "",
                Tenant = tenant ?? "",
                Actor = actor ?? "",
                ActionPrefix = action ?? "",
                Since = Time(since, "since"),
                Until = Time(until, "until"),
                Result = result ?? "",
            };
            return ProtoJson.Result(await audit.ListAsync(RestApi.CallerOf(http), request, ct));
        });

    /// <summary>Parsed here rather than bound, so that "abc" is problem details like any bad filter.</summary>
    private static int PageSize(string? value)
        => value is null ? 0
            : int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var size) ? size
            : throw ApiException.Invalid($"page_size must be between 0 and {AuditQueries.MaxPageSize}.");

    /// <summary>An RFC 3339 time with its offset, such as 2026-12-08T00:00:00Z: one without an offset would mean the server's local time.</summary>
    private static Timestamp? Time(string? value, string field)
    {
        if (value is null)
        {
            return null;
        }
        if (!DateTimeOffset.TryParseExact(value, ["yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK", "yyyy-MM-dd'T'HH:mm:ssK"], CultureInfo.InvariantCulture, DateTimeStyles.None, out var time)
            || !(value.EndsWith('Z') || (value.Length > 6 && value[^6] is '+' or '-')))
        {
            throw ApiException.Invalid($"{field} must be an RFC 3339 time with its offset, such as 2026-12-08T00:00:00Z.");
        }
        return Timestamp.FromDateTimeOffset(time);
    }
}
