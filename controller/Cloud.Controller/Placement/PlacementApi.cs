using Cloud.Controller.Api;
using Cloud.Controller.Capacity;
using Cloud.Controller.Limits;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;

namespace Cloud.Controller.Placement;

/// <summary>
/// REST/JSON for placement: dry runs and decisions under /v1/placement, server groups under
/// /v1/server-groups, aggregates under /v1/aggregates, zones under /v1/availability-zones, and
/// capacity planning under /v1/capacity.
/// </summary>
internal static class PlacementApi
{
    public static IServiceCollection AddPlacementApi(this IServiceCollection services)
        => services.AddSingleton<PlacementService>().AddSingleton<CapacityPlanner>().AddSingleton<CapacityService>();

    public static IEndpointRouteBuilder MapPlacementApi(this IEndpointRouteBuilder app)
    {
        app.MapGrpcService<PlacementGrpcService>().RequirePerTokenRateLimit();
        var v1 = app.MapApiGroup();

        v1.MapGet("/capacity", async (HttpContext http, CapacityService capacity, CancellationToken ct) =>
            ProtoJson.Result(await capacity.PlanAsync(RestApi.CallerOf(http), new PlanCapacityRequest(), ct)));
        v1.MapPost("/capacity/plan", async (HttpContext http, CapacityService capacity, CancellationToken ct) =>
            ProtoJson.Result(await capacity.PlanAsync(RestApi.CallerOf(http), await ProtoJson.ReadAsync<PlanCapacityRequest>(http.Request, ct), ct)));
        v1.MapPost("/placement/dry-run", async (HttpContext http, PlacementService placement, CancellationToken ct) =>
            ProtoJson.Result(await placement.DryRunAsync(RestApi.CallerOf(http), await ProtoJson.ReadAsync<DryRunRequest>(http.Request, ct), ct)));
        v1.MapGet("/placement/decisions", async (HttpContext http, PlacementService placement, string? consumer_id, int? page_size, CancellationToken ct) =>
            ProtoJson.Result(await placement.ListDecisionsAsync(RestApi.CallerOf(http), new ListPlacementDecisionsRequest { ConsumerId = consumer_id ?? "", PageSize = page_size ?? 0 }, ct)));
        v1.MapGet("/placement/decisions/{id}", async (HttpContext http, PlacementService placement, string id, CancellationToken ct) =>
            ProtoJson.Result(await placement.GetDecisionAsync(RestApi.CallerOf(http), id, ct)));

        v1.MapPost("/server-groups", async (HttpContext http, PlacementService placement, CancellationToken ct) =>
        {
            var group = await placement.CreateServerGroupAsync(RestApi.CallerOf(http), await ProtoJson.ReadAsync<CreateServerGroupRequest>(http.Request, ct), ct);
            return ProtoJson.Result(group, StatusCodes.Status201Created, $"/v1/server-groups/{group.Id}");
        });
        v1.MapGet("/server-groups", async (HttpContext http, PlacementService placement, CancellationToken ct) =>
            ProtoJson.Result(await placement.ListServerGroupsAsync(RestApi.CallerOf(http), ct)));
        v1.MapGet("/server-groups/{id}", async (HttpContext http, PlacementService placement, string id, CancellationToken ct) =>
            ProtoJson.Result(await placement.GetServerGroupAsync(RestApi.CallerOf(http), id, ct)));
        v1.MapDelete("/server-groups/{id}", async (HttpContext http, PlacementService placement, string id, CancellationToken ct) =>
        {
            await placement.DeleteServerGroupAsync(RestApi.CallerOf(http), id, ct);
            return Results.NoContent();
        });

        v1.MapPost("/aggregates", async (HttpContext http, PlacementService placement, CancellationToken ct) =>
        {
            var aggregate = await placement.CreateAggregateAsync(RestApi.CallerOf(http), await ProtoJson.ReadAsync<CreateAggregateRequest>(http.Request, ct), ct);
            return ProtoJson.Result(aggregate, StatusCodes.Status201Created, $"/v1/aggregates/{aggregate.Name}");
        });
        v1.MapGet("/aggregates", async (HttpContext http, PlacementService placement, CancellationToken ct) =>
            ProtoJson.Result(await placement.ListAggregatesAsync(RestApi.CallerOf(http), ct)));
        v1.MapPut("/aggregates/{name}/nodes/{node}", async (HttpContext http, PlacementService placement, string name, string node, CancellationToken ct) =>
            ProtoJson.Result(await placement.AddAggregateNodeAsync(RestApi.CallerOf(http), new AggregateNodeRequest { Aggregate = name, Node = node }, ct)));
        v1.MapDelete("/aggregates/{name}/nodes/{node}", async (HttpContext http, PlacementService placement, string name, string node, CancellationToken ct) =>
            ProtoJson.Result(await placement.RemoveAggregateNodeAsync(RestApi.CallerOf(http), new AggregateNodeRequest { Aggregate = name, Node = node }, ct)));
        v1.MapDelete("/aggregates/{name}", async (HttpContext http, PlacementService placement, string name, CancellationToken ct) =>
        {
            await placement.DeleteAggregateAsync(RestApi.CallerOf(http), name, ct);
            return Results.NoContent();
        });

        v1.MapGet("/availability-zones", async (HttpContext http, PlacementService placement, CancellationToken ct) =>
            ProtoJson.Result(await placement.ListZonesAsync(RestApi.CallerOf(http), ct)));
        return app;
    }
}
