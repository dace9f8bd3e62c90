using Cloud.Controller.Audit;
using Cloud.Controller.Auth;
using Cloud.Controller.Catalog;
using Cloud.Controller.Images;
using Cloud.Controller.Limits;
using Cloud.Controller.Nodes;
using Cloud.Controller.Operations;
using Cloud.Controller.Privacy;
using Cloud.Controller.Tenants;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Google.Protobuf;

namespace Cloud.Controller.Api;

/// <summary>REST/JSON under /v1. Mutations answer 202 with the operation that does the work.</summary>
internal static class RestApi
{
    private const string IdempotencyHeader = "Idempotency-Key";

    public static void MapRestApi(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapApiGroup();
        MapVms(v1);
        MapSnapshots(v1);
        MapOperations(v1);
        MapCatalog(v1);
        v1.MapImages();
        MapTenants(v1);
        v1.MapAudit();
    }

    private static void MapVms(RouteGroupBuilder v1)
    {
        v1.MapPost("/vms", async (HttpContext http, VmService vms, CancellationToken ct) =>
        {
            var request = await ProtoJson.ReadAsync<CreateVmRequest>(http.Request, ct);
            request.IdempotencyKey = IdempotencyKey(http, request.IdempotencyKey);
            return Accepted(await vms.CreateAsync(CallerOf(http), request, ct));
        });
        v1.MapPost("/vms/batch", async (HttpContext http, VmService vms, CancellationToken ct) =>
        {
            var request = await ProtoJson.ReadAsync<CreateVmsRequest>(http.Request, ct);
            request.IdempotencyKey = IdempotencyKey(http, request.IdempotencyKey);
            return Accepted(await vms.CreateBatchAsync(CallerOf(http), request, ct));
        });
        v1.MapGet("/vms", async (HttpContext http, VmService vms, int? page_size, string? page_token, string? label_selector, CancellationToken ct) =>
            ProtoJson.Result(await vms.ListAsync(CallerOf(http),
                new ListVmsRequest { PageSize = page_size ?? 0, PageToken = page_token ?? "", LabelSelector = label_selector ?? "" }, ct)));
        v1.MapGet("/vms/watch", (HttpContext http, VmWatch watch, string? label_selector, CancellationToken ct) =>
            // Parsed before the stream starts, so a bad selector is still a problem-details answer.
            new ServerSentEvents(watch.WatchAsync(CallerOf(http), LabelSelector.Parse(label_selector ?? ""), ct), CallerOf(http)));
        v1.MapGet("/vms/{id}", async (HttpContext http, VmService vms, string id, CancellationToken ct) =>
            ProtoJson.Result(await vms.GetAsync(CallerOf(http), id, ct)));
        v1.MapDelete("/vms/{id}", async (HttpContext http, VmService vms, string id, CancellationToken ct) =>
            Accepted(await vms.DeleteAsync(CallerOf(http), new DeleteVmRequest { Id = id, IdempotencyKey = IdempotencyKey(http, "") }, ct)));
        MapVmVerb<VmActionRequest>(v1, "start", (vms, caller, request, ct) => vms.StartAsync(caller, request, ct));
        MapVmVerb<StopVmRequest>(v1, "stop", (vms, caller, request, ct) => vms.StopAsync(caller, request, ct));
        MapVmVerb<VmActionRequest>(v1, "reboot", (vms, caller, request, ct) => vms.RebootAsync(caller, request, ct));
        MapVmVerb<ResizeVmRequest>(v1, "resize", (vms, caller, request, ct) => vms.ResizeAsync(caller, request, ct));
        MapVmVerb<MigrateVmRequest>(v1, "migrate", (vms, caller, request, ct) => vms.MigrateAsync(caller, request, ct));
        v1.MapPost("/vms/{id}/snapshots", async (HttpContext http, SnapshotService snapshots, string id, CancellationToken ct) =>
        {
            var request = await ReadForAsync<CreateSnapshotRequest>(http, id, r => r.VmId, (r, v) => r.VmId = v, ct);
            request.IdempotencyKey = IdempotencyKey(http, request.IdempotencyKey);
            return Accepted(await snapshots.CreateAsync(CallerOf(http), request, ct));
        });
        v1.MapGet("/vms/{id}/console-output", async (HttpContext http, ConsoleOutputService consoleOutput, string id, string? length, CancellationToken ct) =>
            // REST carries no deadline: the agent call gets the per-attempt timeout, and ends if the client goes away.
            ProtoJson.Result(await consoleOutput.GetAsync(CallerOf(http), new GetConsoleOutputRequest { Id = id, Length = ConsoleOutputLength(length) }, DateTime.MaxValue, ct)));
        v1.MapGet("/vms/{id}/snapshots", async (HttpContext http, SnapshotService snapshots, string id, CancellationToken ct) =>
            ProtoJson.Result(await snapshots.ListAsync(CallerOf(http), new ListSnapshotsRequest { VmId = id }, ct)));
    }

    private static void MapSnapshots(RouteGroupBuilder v1)
    {
        v1.MapGet("/snapshots", async (HttpContext http, SnapshotService snapshots, CancellationToken ct) =>
            ProtoJson.Result(await snapshots.ListAsync(CallerOf(http), new ListSnapshotsRequest(), ct)));
        v1.MapGet("/snapshots/{id}", async (HttpContext http, SnapshotService snapshots, string id, CancellationToken ct) =>
            ProtoJson.Result(await snapshots.GetAsync(CallerOf(http), id, ct)));
        v1.MapDelete("/snapshots/{id}", async (HttpContext http, SnapshotService snapshots, string id, CancellationToken ct) =>
            Accepted(await snapshots.DeleteAsync(CallerOf(http), new DeleteSnapshotRequest { Id = id, IdempotencyKey = IdempotencyKey(http, "") }, ct)));
        v1.MapPost("/snapshots/{id}/restore", async (HttpContext http, SnapshotService snapshots, string id, CancellationToken ct) =>
        {
            var request = await ReadForAsync<RestoreSnapshotRequest>(http, id, r => r.Id, (r, v) => r.Id = v, ct);
            request.IdempotencyKey = IdempotencyKey(http, request.IdempotencyKey);
            return Accepted(await snapshots.RestoreAsync(CallerOf(http), request, ct));
        });
    }

    private static void MapOperations(RouteGroupBuilder v1)
    {
        v1.MapGet("/operations/{id}", async (HttpContext http, OperationQueries operations, string id, CancellationToken ct) =>
            ProtoJson.Result(await operations.GetAsync(CallerOf(http), id, ct)));
        v1.MapGet("/operations", async (HttpContext http, OperationQueries operations, int? page_size, string? page_token, CancellationToken ct) =>
            ProtoJson.Result(await operations.ListAsync(CallerOf(http), new ListOperationsRequest { PageSize = page_size ?? 0, PageToken = page_token ?? "" }, ct)));
        v1.MapPost("/operations/{id}/cancel", async (HttpContext http, OperationQueries operations, string id, CancellationToken ct) =>
        {
            await ReadForAsync<CancelOperationRequest>(http, id, r => r.Id, (r, v) => r.Id = v, ct);
            return ProtoJson.Result(await operations.CancelAsync(CallerOf(http), id, ct));
        });
    }

    private static void MapCatalog(RouteGroupBuilder v1)
    {
        v1.MapGet("/flavors", async (HttpContext http, CatalogService catalog, CancellationToken ct) =>
            ProtoJson.Result(await catalog.ListFlavorsAsync(CallerOf(http), ct)));
        v1.MapPost("/flavors", async (HttpContext http, CatalogService catalog, CancellationToken ct) =>
        {
            var flavor = await catalog.CreateFlavorAsync(CallerOf(http), await ProtoJson.ReadAsync<Flavor>(http.Request, ct), ct);
            return ProtoJson.Result(flavor, StatusCodes.Status201Created, $"/v1/flavors/{flavor.Name}");
        });
        v1.MapPut("/flavors/{name}/access/{tenant}", async (HttpContext http, CatalogService catalog, string name, string tenant, CancellationToken ct) =>
            ProtoJson.Result(await catalog.SetAccessAsync(CallerOf(http), new FlavorAccessRequest { Flavor = name, Tenant = tenant }, granted: true, ct)));
        v1.MapDelete("/flavors/{name}/access/{tenant}", async (HttpContext http, CatalogService catalog, string name, string tenant, CancellationToken ct) =>
            ProtoJson.Result(await catalog.SetAccessAsync(CallerOf(http), new FlavorAccessRequest { Flavor = name, Tenant = tenant }, granted: false, ct)));
        v1.MapGet("/nodes", async (HttpContext http, NodeQueries nodes, CancellationToken ct) =>
            ProtoJson.Result(await nodes.ListAsync(CallerOf(http), ct)));
        v1.MapPost("/nodes/{name}/cordon", async (HttpContext http, NodeQueries nodes, string name, CancellationToken ct) =>
            ProtoJson.Result(await nodes.SetSchedulableAsync(CallerOf(http), new SetNodeSchedulableRequest { Name = name, Schedulable = false }, ct)));
        v1.MapPost("/nodes/{name}/uncordon", async (HttpContext http, NodeQueries nodes, string name, CancellationToken ct) =>
            ProtoJson.Result(await nodes.SetSchedulableAsync(CallerOf(http), new SetNodeSchedulableRequest { Name = name, Schedulable = true }, ct)));
        v1.MapPost("/nodes/{name}/join-tokens", async (HttpContext http, Trust.JoinTokens tokens, string name, CancellationToken ct) =>
        {
            var request = await ReadForAsync<CreateJoinTokenRequest>(http, name, r => r.Name, (r, v) => r.Name = v, ct);
            return ProtoJson.Result(await tokens.CreateAsync(CallerOf(http), request, ct), StatusCodes.Status201Created);
        });
        v1.MapDelete("/nodes/{name}", async (HttpContext http, NodeQueries nodes, string name, CancellationToken ct) =>
            ProtoJson.Result(await nodes.DeleteAsync(CallerOf(http), new DeleteNodeRequest { Name = name }, ct)));
        v1.MapPost("/nodes/{name}/drain", async (HttpContext http, NodeQueries nodes, string name, CancellationToken ct) =>
        {
            var request = await ReadForAsync<DrainNodeRequest>(http, name, r => r.Name, (r, v) => r.Name = v, ct);
            request.IdempotencyKey = IdempotencyKey(http, request.IdempotencyKey);
            return Accepted(await nodes.DrainAsync(CallerOf(http), request, ct));
        });
    }

    private static void MapTenants(RouteGroupBuilder v1)
    {
        v1.MapPost("/tenants", async (HttpContext http, TenantService tenants, CancellationToken ct) =>
        {
            var request = await ProtoJson.ReadAsync<CreateTenantRequest>(http.Request, ct);
            request.IdempotencyKey = IdempotencyKey(http, request.IdempotencyKey);
            var tenant = await tenants.CreateAsync(CallerOf(http), request, ct);
            return ProtoJson.Result(tenant, StatusCodes.Status201Created, $"/v1/tenants/{tenant.Id}");
        });
        v1.MapGet("/tenants", async (HttpContext http, TenantService tenants, CancellationToken ct) =>
            ProtoJson.Result(await tenants.ListAsync(CallerOf(http), ct)));
        v1.MapGet("/tenants/{id}", async (HttpContext http, TenantService tenants, string id, CancellationToken ct) =>
            ProtoJson.Result(await tenants.GetAsync(CallerOf(http), id, ct)));
        v1.MapDelete("/tenants/{id}", async (HttpContext http, TenantDeletions deletions, string id, string? cascade, CancellationToken ct) =>
            Accepted(await deletions.DeleteAsync(CallerOf(http),
                new DeleteTenantRequest { Id = id, Cascade = Flag(cascade, "cascade"), IdempotencyKey = IdempotencyKey(http, "") }, ct)));
        v1.MapPut("/tenants/{id}/quota", async (HttpContext http, TenantService tenants, string id, CancellationToken ct) =>
        {
            var quota = await ProtoJson.ReadAsync<Quota>(http.Request, ct);
            return ProtoJson.Result(await tenants.SetQuotaAsync(CallerOf(http), new SetQuotaRequest { Tenant = id, Quota = quota }, ct));
        });
        v1.MapPost("/tokens", async (HttpContext http, TenantService tenants, CancellationToken ct) =>
        {
            var request = await ProtoJson.ReadAsync<CreateTokenRequest>(http.Request, ct);
            request.IdempotencyKey = IdempotencyKey(http, request.IdempotencyKey);
            var token = await tenants.CreateTokenAsync(CallerOf(http), request, ct);
            return ProtoJson.Result(token, StatusCodes.Status201Created, $"/v1/tokens/{token.Id}");
        });
        v1.MapGet("/tokens", async (HttpContext http, TenantService tenants, string? tenant, CancellationToken ct) =>
            ProtoJson.Result(await tenants.ListTokensAsync(CallerOf(http), new ListTokensRequest { Tenant = tenant ?? "" }, ct)));
        v1.MapDelete("/tokens/{id}", async (HttpContext http, TenantService tenants, string id, CancellationToken ct) =>
            ProtoJson.Result(await tenants.RevokeTokenAsync(CallerOf(http), id, ct)));
    }

    /// <summary>?length=N; absent is 0 (the default). Not a number, or out of int range, is refused as any out-of-bounds length is.</summary>
    private static int ConsoleOutputLength(string? length)
        => length is null ? 0
            : int.TryParse(length, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n
            : -1;

    /// <summary>A query flag: absent or "false" is false, "true" is true, anything else is refused.</summary>
    private static bool Flag(string? value, string name)
        => value switch
        {
            null or "false" => false,
            "true" => true,
            _ => throw ApiException.Invalid($"{name} must be true or false."),
        };

    internal static Caller CallerOf(HttpContext http) => ApiCallers.Of(http);

    /// <summary>
    /// /v1: only API callers get in, every POST, PUT, PATCH and DELETE also requires the
    /// <see cref="CloudPolicies.Write"/> policy (readers are refused before the handler runs), and an
    /// <see cref="ApiException"/> becomes problem details.
    /// </summary>
    internal static RouteGroupBuilder MapApiGroup(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").RequireAuthorization(CloudPolicies.Api).RequirePerTokenRateLimit().AddEndpointFilter<ApiErrorFilter>();
        ((IEndpointConventionBuilder)group).Finally(endpoint =>
        {
            if (endpoint.Metadata.OfType<IHttpMethodMetadata>().Any(m => m.HttpMethods.Any(IsMutating)))
            {
                endpoint.Metadata.Add(new Microsoft.AspNetCore.Authorization.AuthorizeAttribute(CloudPolicies.Write));
            }
        });
        return group;
    }

    private static bool IsMutating(string method)
        => HttpMethods.IsPost(method) || HttpMethods.IsPut(method) || HttpMethods.IsPatch(method) || HttpMethods.IsDelete(method);

    private static IResult Accepted(Operation operation)
        => ProtoJson.Result(operation, StatusCodes.Status202Accepted, $"/v1/operations/{operation.Id}");

    /// <summary>
    /// The body of a verb on a resource named in the path. The body may be empty; an id in it
    /// must be the path's.
    /// </summary>
    /// <summary>POST /v1/vms/{id}/{verb}: the body (optional) names no other VM; the answer is the operation.</summary>
    private static void MapVmVerb<TRequest>(RouteGroupBuilder v1, string verb, Func<VmService, Caller, TRequest, CancellationToken, Task<Operation>> run)
        where TRequest : IMessage<TRequest>, IVmVerbRequest, new()
        => v1.MapPost($"/vms/{{id}}/{verb}", async (HttpContext http, VmService vms, string id, CancellationToken ct) =>
        {
            var request = await ReadForAsync<TRequest>(http, id, r => r.Id, (r, v) => r.Id = v, ct);
            request.IdempotencyKey = IdempotencyKey(http, request.IdempotencyKey);
            return Accepted(await run(vms, CallerOf(http), request, ct));
        });

    private static async Task<T> ReadForAsync<T>(HttpContext http, string id, Func<T, string> getId, Action<T, string> setId, CancellationToken cancellationToken)
        where T : IMessage<T>, new()
    {
        var request = http.Request.ContentLength is 0 || (http.Request.ContentLength is null && http.Request.ContentType is null)
            ? new T()
            : await ProtoJson.ReadAsync<T>(http.Request, cancellationToken);
        if (getId(request).Length > 0 && getId(request) != id)
        {
            throw ApiException.Invalid("The id in the body differs from the one in the path.");
        }
        setId(request, id);
        return request;
    }

    internal static string IdempotencyKey(HttpContext http, string fromBody)
    {
        var header = http.Request.Headers[IdempotencyHeader];
        if (header.Count > 1)
        {
            throw ApiException.Invalid("Send one Idempotency-Key header.");
        }
        if (header.Count == 0)
        {
            return fromBody;
        }
        // A header sent empty is a client bug, not "no key": refuse it rather than lose the retry safety.
        VmValidation.RequireIdempotencyKey(header[0] ?? "");
        return header[0]!;
    }

    /// <summary>text/event-stream of VM changes: one "vm" event per change, its data the VM as JSON.</summary>
    private sealed class ServerSentEvents(IAsyncEnumerable<Vm> changes, Caller caller) : IResult
    {
        private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

        public async Task ExecuteAsync(HttpContext httpContext)
        {
            var response = httpContext.Response;
            var views = httpContext.RequestServices.GetRequiredService<Privacy.TenantViews>();
            response.ContentType = "text/event-stream";
            response.Headers.CacheControl = "no-cache";
            try
            {
                await response.Body.FlushAsync(httpContext.RequestAborted);
                await foreach (var vm in changes.WithCancellation(httpContext.RequestAborted))
                {
                    await views.ApplyAsync(caller, vm, httpContext.RequestAborted);
                    await response.WriteAsync($"event: vm\ndata: {Formatter.Format(vm)}\n\n", httpContext.RequestAborted);
                    await response.Body.FlushAsync(httpContext.RequestAborted);
                }
            }
            catch (OperationCanceledException) when (httpContext.RequestAborted.IsCancellationRequested)
            {
                // The client went away: the normal end of a watch.
            }
            catch (ApiException e)
            {
                // The status line is long gone: the stream's last event says why it ends.
                var problem = await views.ApplyAsync(caller, e, httpContext.RequestAborted);
                await response.WriteAsync($"event: error\ndata: {ApiErrorFilter.ProblemJson(problem)}\n\n", httpContext.RequestAborted);
                await response.Body.FlushAsync(httpContext.RequestAborted);
            }
        }
    }
}

/// <summary>Turns <see cref="ApiException"/>s into problem details. Who the caller is, authentication settled before.</summary>
internal sealed class ApiErrorFilter : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (ApiException e)
        {
            return Problem(await e.ForCallerAsync(context.HttpContext));
        }
        catch (BadHttpRequestException e)
        {
            // Kestrel's own refusals keep their status: 413 for a body over its limit.
            return Problem(new ApiException(StatusCode.InvalidArgument, e.Message, new Dictionary<string, object?> { ["httpStatus"] = e.StatusCode }));
        }
    }

    public static IResult Problem(ApiException e)
    {
        var status = e.Details.TryGetValue("httpStatus", out var s) && s is int explicitStatus ? explicitStatus : ApiException.HttpStatus(e.Code);
        var extensions = new Dictionary<string, object?> { ["code"] = ApiException.CodeName(e.Code) };
        var details = e.Details.Where(kv => kv.Key != "httpStatus").ToDictionary();
        if (details.Count > 0)
        {
            extensions["details"] = details;
        }
        return Results.Problem(detail: e.Message, statusCode: status, title: ApiException.CodeName(e.Code), extensions: extensions);
    }

    /// <summary>The problem details of <paramref name="e"/> as one line of JSON, for a stream that has already begun.</summary>
    public static string ProblemJson(ApiException e)
        => System.Text.Json.JsonSerializer.Serialize(new System.Text.Json.Nodes.JsonObject
        {
            ["title"] = ApiException.CodeName(e.Code),
            ["status"] = ApiException.HttpStatus(e.Code),
            ["detail"] = e.Message,
            ["code"] = ApiException.CodeName(e.Code),
        });
}
