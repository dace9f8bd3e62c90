using System.Diagnostics;
using System.Globalization;
using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http.Features;

namespace Cloud.Controller.Audit;

/// <summary>
/// The one recording point of the audit trail. It wraps authentication, authorization, rate
/// limiting and the endpoint, so that a call refused by any of them (401, 403, 429, 400) is
/// recorded like one that succeeded. Recorded: every POST, PUT, PATCH and DELETE under /v1, and
/// every gRPC method that requires the write policy or is marked <see cref="AuditedAttribute"/>.
/// Reads are not. What is recorded comes from the route, the authenticated principal and the
/// answer's status: never a body, a header's value or a token.
/// </summary>
internal sealed class AuditMiddleware(RequestDelegate next, AuditWriter writer, TimeProvider time)
{
    /// <summary>Route values are the caller's text: kept to this length.</summary>
    private const int MaxTargetLength = 200;

    public async Task InvokeAsync(HttpContext http)
    {
        var action = AuditedAction(http);
        if (action is null)
        {
            await next(http);
            return;
        }
        var arrived = time.GetUtcNow();
        var threw = false;
        try
        {
            await next(http);
        }
        catch
        {
            threw = true;
            throw;
        }
        finally
        {
            await writer.RecordAsync(Describe(http, action, arrived, threw));
        }
    }

    /// <summary>What the call does, as the trail names it; null for a call that is not recorded.</summary>
    internal static string? AuditedAction(HttpContext http)
    {
        var endpoint = http.GetEndpoint();
        if (endpoint?.Metadata.GetMetadata<GrpcMethodMetadata>() is { } grpc)
        {
            var audited = endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>().Any(a => a.Policy == CloudPolicies.Write)
                || endpoint.Metadata.GetMetadata<AuditedAttribute>() is not null;
            return audited ? grpc.Method.FullName.TrimStart('/') : null;
        }
        var method = http.Request.Method;
        if (!IsMutating(method) || !http.Request.Path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }
        // No route: an unknown path or a method the path does not take. Still a write attempt;
        // the path itself is the caller's text and is not kept.
        return endpoint is RouteEndpoint { RoutePattern.RawText: { } template }
            ? $"{method} {template}"
            : $"{method} (no route)";
    }

    private static bool IsMutating(string method)
        => HttpMethods.IsPost(method) || HttpMethods.IsPut(method) || HttpMethods.IsPatch(method) || HttpMethods.IsDelete(method);

    private static AuditEventEntity Describe(HttpContext http, string action, DateTimeOffset arrived, bool threw)
    {
        var (status, grpcStatus) = Result(http, threw);
        var auditEvent = new AuditEventEntity
        {
            Id = Guid.CreateVersion7(arrived),
            Time = arrived,
            Action = action,
            TargetId = Target(http),
            SourceAddress = http.Connection.RemoteIpAddress is { IsIPv4MappedToIPv6: true } mapped ? mapped.MapToIPv4() : http.Connection.RemoteIpAddress,
            Status = status,
            GrpcStatus = grpcStatus,
            TraceId = TraceId(http),
            Actor = "anonymous",
        };
        if (ApiCallers.Find(http.User) is { } caller)
        {
            auditEvent.Actor = caller.Subject;
            auditEvent.ActorName = caller.TokenName;
            auditEvent.Role = caller.Role;
            // An operator acts for no tenant in particular: its events are the operators' alone.
            auditEvent.TenantId = caller.IsOperator ? null : caller.ProjectId;
        }
        else if (ApiCallers.IsNode(http.User))
        {
            auditEvent.Actor = ApiCallers.NodeRole;
            auditEvent.Role = ApiCallers.NodeRole;
        }
        return auditEvent;
    }

    /// <summary>
    /// The HTTP status; for gRPC also the status code, from the trailers (or the headers of a
    /// trailers-only answer, as refusals before the method are). A gRPC answer's HTTP status is
    /// 200 whatever happened, so the status kept is the one the code stands for on REST.
    /// </summary>
    private static (int Status, int? GrpcStatus) Result(HttpContext http, bool threw)
    {
        var response = http.Response;
        if (!ApiRefusal.IsGrpc(http.Request))
        {
            return (threw && !response.HasStarted ? StatusCodes.Status500InternalServerError : response.StatusCode, null);
        }
        string? code = response.Headers["grpc-status"];
        if (string.IsNullOrEmpty(code))
        {
            code = http.Features.Get<IHttpResponseTrailersFeature>()?.Trailers["grpc-status"];
        }
        if (!int.TryParse(code, NumberStyles.None, CultureInfo.InvariantCulture, out var grpcStatus))
        {
            // No status at all: the call broke off (an exception, a reset stream).
            return (threw || response.StatusCode == StatusCodes.Status200OK ? StatusCodes.Status500InternalServerError : response.StatusCode, null);
        }
        var status = response.StatusCode == StatusCodes.Status200OK ? ApiException.HttpStatus((Grpc.Core.StatusCode)grpcStatus) : response.StatusCode;
        return (status, grpcStatus);
    }

    /// <summary>
    /// The request's trace: its activity's when tracing is on (which continues the caller's
    /// traceparent), else the caller's traceparent itself, so that the event still joins the
    /// caller's own trace. Only a well-formed W3C id is kept.
    /// </summary>
    private static string? TraceId(HttpContext http)
    {
        if (Activity.Current is { TraceId: var current } && current != default)
        {
            return current.ToHexString();
        }
        string? traceParent = http.Request.Headers.TraceParent;
        return traceParent is not null && ActivityContext.TryParse(traceParent, null, out var context) ? context.TraceId.ToHexString() : null;
    }

    /// <summary>REST: the route's first parameter (the resource the path names); gRPC: what <see cref="AuditTargetInterceptor"/> found.</summary>
    private static string? Target(HttpContext http)
    {
        string? target = null;
        if (http.GetEndpoint() is RouteEndpoint { RoutePattern.Parameters: [var first, ..] })
        {
            target = http.Request.RouteValues[first.Name] as string;
        }
        else if (http.Features.Get<AuditTarget>() is { } found)
        {
            target = found.Id;
        }
        return string.IsNullOrEmpty(target) ? null : target.Length <= MaxTargetLength ? target : target[..MaxTargetLength];
    }
}

/// <summary>
/// Records a gRPC method in the audit trail although it does not require the write policy: a
/// mutation by another kind of caller (a node's registration).
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class AuditedAttribute : Attribute;

/// <summary>The resource a gRPC call names, found in its request by <see cref="AuditTargetInterceptor"/>.</summary>
internal sealed record AuditTarget(string Id);
