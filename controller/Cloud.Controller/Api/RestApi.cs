using Cloud.Controller.Auth;
using Cloud.Controller.Catalog;
using Cloud.Controller.Nodes;
using Cloud.Controller.Operations;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Cloud.Grpc;

namespace Cloud.Controller.Api;

/// <summary>REST/JSON under /v1. Mutations answer 202 with the operation that does the work.</summary>
internal static class RestApi
{
    private const string IdempotencyHeader = "Idempotency-Key";

    public static void MapRestApi(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1").AddEndpointFilter<ApiErrorFilter>();

        v1.MapPost("/vms", async (HttpContext http, VmService vms, CancellationToken ct) =>
        {
            var request = await ProtoJson.ReadAsync<CreateVmRequest>(http.Request, ct);
            request.IdempotencyKey = IdempotencyKey(http, request.IdempotencyKey);
            var operation = await vms.CreateAsync(CallerOf(http), request, ct);
            return ProtoJson.Result(operation, StatusCodes.Status202Accepted, $"/v1/operations/{operation.Id}");
        });
        v1.MapGet("/vms", async (HttpContext http, VmService vms, int? page_size, string? page_token, CancellationToken ct) =>
            ProtoJson.Result(await vms.ListAsync(CallerOf(http), new ListVmsRequest { PageSize = page_size ?? 0, PageToken = page_token ?? "" }, ct)));
        v1.MapGet("/vms/{id}", async (HttpContext http, VmService vms, string id, CancellationToken ct) =>
            ProtoJson.Result(await vms.GetAsync(CallerOf(http), id, ct)));
        v1.MapDelete("/vms/{id}", async (HttpContext http, VmService vms, string id, CancellationToken ct) =>
        {
            var operation = await vms.DeleteAsync(CallerOf(http), new DeleteVmRequest { Id = id, IdempotencyKey = IdempotencyKey(http, "") }, ct);
            return ProtoJson.Result(operation, StatusCodes.Status202Accepted, $"/v1/operations/{operation.Id}");
        });

        v1.MapGet("/flavors", async (HttpContext http, CatalogService catalog, CancellationToken ct) =>
            ProtoJson.Result(await catalog.ListFlavorsAsync(CallerOf(http), ct)));
        v1.MapPost("/flavors", async (HttpContext http, CatalogService catalog, CancellationToken ct) =>
        {
            var flavor = await catalog.CreateFlavorAsync(CallerOf(http), await ProtoJson.ReadAsync<Flavor>(http.Request, ct), ct);
            return ProtoJson.Result(flavor, StatusCodes.Status201Created, $"/v1/flavors/{flavor.Name}");
        });
        v1.MapGet("/images", async (CatalogService catalog, CancellationToken ct) =>
            ProtoJson.Result(await catalog.ListImagesAsync(ct)));
        v1.MapGet("/nodes", async (HttpContext http, NodeQueries nodes, CancellationToken ct) =>
            ProtoJson.Result(await nodes.ListAsync(CallerOf(http), ct)));
        v1.MapGet("/operations/{id}", async (HttpContext http, OperationQueries operations, string id, CancellationToken ct) =>
            ProtoJson.Result(await operations.GetAsync(CallerOf(http), id, ct)));
        v1.MapGet("/operations", async (HttpContext http, OperationQueries operations, int? page_size, string? page_token, CancellationToken ct) =>
            ProtoJson.Result(await operations.ListAsync(CallerOf(http), new ListOperationsRequest { PageSize = page_size ?? 0, PageToken = page_token ?? "" }, ct)));
    }

    internal static Caller CallerOf(HttpContext http) => (Caller)http.Items[typeof(Caller)]!;

    private static string IdempotencyKey(HttpContext http, string fromBody)
    {
        var header = http.Request.Headers[IdempotencyHeader];
        if (header.Count > 1)
        {
            throw ApiException.Invalid("Send one Idempotency-Key header.");
        }
        return header.Count == 1 ? header[0] ?? "" : fromBody;
    }
}

/// <summary>Authenticates every /v1 call and turns <see cref="ApiException"/>s into problem details.</summary>
internal sealed class ApiErrorFilter(TokenAuthenticator authenticator) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        try
        {
            var caller = authenticator.AuthenticateApi(http.Request.Headers.Authorization)
                ?? throw new ApiException(StatusCode.Unauthenticated, "Send a valid API token: Authorization: Bearer <token>.");
            http.Items[typeof(Caller)] = caller;
            return await next(context);
        }
        catch (ApiException e)
        {
            return Problem(e);
        }
        catch (BadHttpRequestException e)
        {
            return Problem(ApiException.Invalid(e.Message));
        }
    }

    private static IResult Problem(ApiException e)
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
}
