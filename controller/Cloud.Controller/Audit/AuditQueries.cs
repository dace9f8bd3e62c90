using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Google.Protobuf.WellKnownTypes;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Audit;

/// <summary>
/// Reading the audit trail: operators see every event; a tenant's tokens (members and readers)
/// see their own tenant's only, never another tenant's and never the events of callers acting for
/// no tenant (operators, nodes, anonymous callers).
/// </summary>
internal sealed class AuditQueries(IDbContextFactory<LedgerDbContext> contexts)
{
    public const int DefaultPageSize = 50;
    public const int MaxPageSize = 500;
    private const int MaxFilterLength = 200;

    /// <summary>The result classes a filter may ask for.</summary>
    public static readonly IReadOnlyList<string> ResultClasses = ["ok", "client_error", "server_error", "denied"];

    /// <summary>Newest first; the page token is the id of the last event of the previous page.</summary>
    public async Task<ListAuditEventsResponse> ListAsync(Caller caller, ListAuditEventsRequest request, CancellationToken cancellationToken)
    {
        var filter = Validate(request);
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var query = db.AuditEvents.AsNoTracking();
        if (!caller.IsOperator)
        {
            if (filter.Tenant is not null && filter.Tenant != caller.ProjectId)
            {
                // As for any other tenant's resource: not found, whether or not the tenant exists.
                throw ApiException.NotFound("Tenant", filter.Tenant);
            }
            query = query.Where(e => e.TenantId == caller.ProjectId);
        }
        else if (filter.Tenant is not null)
        {
            query = query.Where(e => e.TenantId == filter.Tenant);
        }
        if (filter.Actor is not null)
        {
            query = query.Where(e => e.Actor == filter.Actor);
        }
        if (filter.ActionPrefix is not null)
        {
            query = query.Where(e => e.Action.StartsWith(filter.ActionPrefix));
        }
        if (filter.Since is { } since)
        {
            query = query.Where(e => e.Time >= since);
        }
        if (filter.Until is { } until)
        {
            query = query.Where(e => e.Time < until);
        }
        query = filter.Result switch
        {
            "ok" => query.Where(e => e.Status < 400),
            "client_error" => query.Where(e => e.Status >= 400 && e.Status < 500),
            "server_error" => query.Where(e => e.Status >= 500),
            "denied" => query.Where(e => e.Status == 401 || e.Status == 403 || e.Status == 429),
            _ => query,
        };
        if (filter.After is { } after)
        {
            query = query.Where(e => e.Id.CompareTo(after) < 0);
        }
        var page = await query.OrderByDescending(e => e.Id).Take(filter.PageSize + 1).ToListAsync(cancellationToken);
        var response = new ListAuditEventsResponse { Events = { page.Take(filter.PageSize).Select(ToProto) } };
        if (page.Count > filter.PageSize)
        {
            response.NextPageToken = page[filter.PageSize - 1].Id.ToString();
        }
        return response;
    }

    /// <summary>Every filter checked before the database is asked; a bad one is INVALID_ARGUMENT naming it.</summary>
    private static Filter Validate(ListAuditEventsRequest request)
    {
        if (request.PageSize is < 0 or > MaxPageSize)
        {
            throw ApiException.Invalid($"page_size must be between 0 and {MaxPageSize}.");
        }
        Guid? after = request.PageToken.Length == 0 ? null
            : Guid.TryParse(request.PageToken, out var token) ? token : throw ApiException.Invalid("page_token is invalid.");
        string? tenant = null;
        if (request.Tenant.Length > 0)
        {
            VmValidation.RequireName(request.Tenant, "tenant");
            tenant = request.Tenant;
        }
        var actor = request.Actor.Length == 0 ? null : NormalizeActor(request.Actor);
        string? actionPrefix = null;
        if (request.ActionPrefix.Length > 0)
        {
            if (request.ActionPrefix.Length > MaxFilterLength || request.ActionPrefix.Any(char.IsControl))
            {
                throw ApiException.Invalid($"action must be at most {MaxFilterLength} characters, without control characters.");
            }
            actionPrefix = request.ActionPrefix;
        }
        DateTimeOffset? since = request.Since is null ? null : Time(request.Since, "since");
        DateTimeOffset? until = request.Until is null ? null : Time(request.Until, "until");
        if (since >= until)
        {
            throw ApiException.Invalid("since must be before until.");
        }
        if (request.Result.Length > 0 && !ResultClasses.Contains(request.Result))
        {
            throw ApiException.Invalid($"result must be one of {string.Join(", ", ResultClasses)}.");
        }
        return new Filter(request.PageSize == 0 ? DefaultPageSize : request.PageSize, after, tenant, actor, actionPrefix, since, until,
            request.Result.Length == 0 ? null : request.Result);
    }

    /// <summary>"token:&lt;id&gt;" (or the bare id), "operator", "node" or "anonymous", as events name actors.</summary>
    private static string NormalizeActor(string actor)
    {
        if (actor is "operator" or "node" or "anonymous")
        {
            return actor;
        }
        var id = actor.StartsWith("token:", StringComparison.Ordinal) ? actor["token:".Length..] : actor;
        return Guid.TryParse(id, out var token)
            ? $"token:{token}"
            : throw ApiException.Invalid("actor must be token:<token id>, a token id, operator, node or anonymous.");
    }

    private static DateTimeOffset Time(Timestamp timestamp, string field)
    {
        // Timestamp's own range: years 1 to 9999, nanoseconds below a second.
        if (timestamp.Seconds is < -62135596800 or > 253402300799 || timestamp.Nanos is < 0 or > 999_999_999)
        {
            throw ApiException.Invalid($"{field} is out of range.");
        }
        return timestamp.ToDateTimeOffset();
    }

    public static string ResultClass(int status) => status switch
    {
        < 400 => "ok",
        < 500 => "client_error",
        _ => "server_error",
    };

    private static AuditEvent ToProto(AuditEventEntity e)
    {
        var proto = new AuditEvent
        {
            Id = e.Id.ToString(),
            Time = Timestamp.FromDateTimeOffset(e.Time),
            Actor = e.Actor,
            ActorName = e.ActorName ?? "",
            Role = e.Role ?? "",
            Tenant = e.TenantId ?? "",
            Action = e.Action,
            TargetId = e.TargetId ?? "",
            SourceAddress = e.SourceAddress?.ToString() ?? "",
            Status = e.Status,
            Result = ResultClass(e.Status),
            TraceId = e.TraceId ?? "",
        };
        if (e.GrpcStatus is { } grpcStatus)
        {
            proto.GrpcStatus = grpcStatus;
        }
        return proto;
    }

    private sealed record Filter(int PageSize, Guid? After, string? Tenant, string? Actor, string? ActionPrefix,
        DateTimeOffset? Since, DateTimeOffset? Until, string? Result);
}
