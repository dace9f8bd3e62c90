using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Capacity;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Placement;

/// <summary>cloud.compute.v1.Placement: the same API as REST under /v1/placement, with the same error codes.</summary>
internal sealed class PlacementGrpcService(TokenAuthenticator authenticator, PlacementService placement, CapacityService capacity) : Cloud.Contracts.Compute.V1.Placement.PlacementBase
{
    public override Task<CapacityPlan> PlanCapacity(PlanCapacityRequest request, ServerCallContext context)
        => Call(context, caller => capacity.PlanAsync(caller, request, context.CancellationToken));

    public override Task<DryRunResponse> DryRun(DryRunRequest request, ServerCallContext context)
        => Call(context, caller => placement.DryRunAsync(caller, request, context.CancellationToken));

    public override Task<PlacementDecision> GetPlacementDecision(GetPlacementDecisionRequest request, ServerCallContext context)
        => Call(context, caller => placement.GetDecisionAsync(caller, request.Id, context.CancellationToken));

    public override Task<ListPlacementDecisionsResponse> ListPlacementDecisions(ListPlacementDecisionsRequest request, ServerCallContext context)
        => Call(context, caller => placement.ListDecisionsAsync(caller, request, context.CancellationToken));

    public override Task<ServerGroup> CreateServerGroup(CreateServerGroupRequest request, ServerCallContext context)
        => Call(context, caller => placement.CreateServerGroupAsync(caller, request, context.CancellationToken));

    public override Task<ServerGroup> GetServerGroup(GetServerGroupRequest request, ServerCallContext context)
        => Call(context, caller => placement.GetServerGroupAsync(caller, request.Id, context.CancellationToken));

    public override Task<ListServerGroupsResponse> ListServerGroups(ListServerGroupsRequest request, ServerCallContext context)
        => Call(context, caller => placement.ListServerGroupsAsync(caller, context.CancellationToken));

    public override Task<DeleteServerGroupResponse> DeleteServerGroup(DeleteServerGroupRequest request, ServerCallContext context)
        => Call(context, async caller =>
        {
            await placement.DeleteServerGroupAsync(caller, request.Id, context.CancellationToken);
            return new DeleteServerGroupResponse();
        });

    public override Task<Aggregate> CreateAggregate(CreateAggregateRequest request, ServerCallContext context)
        => Call(context, caller => placement.CreateAggregateAsync(caller, request, context.CancellationToken));

    public override Task<ListAggregatesResponse> ListAggregates(ListAggregatesRequest request, ServerCallContext context)
        => Call(context, caller => placement.ListAggregatesAsync(caller, context.CancellationToken));

    public override Task<Aggregate> AddAggregateNode(AggregateNodeRequest request, ServerCallContext context)
        => Call(context, caller => placement.AddAggregateNodeAsync(caller, request, context.CancellationToken));

    public override Task<Aggregate> RemoveAggregateNode(AggregateNodeRequest request, ServerCallContext context)
        => Call(context, caller => placement.RemoveAggregateNodeAsync(caller, request, context.CancellationToken));

    public override Task<DeleteAggregateResponse> DeleteAggregate(DeleteAggregateRequest request, ServerCallContext context)
        => Call(context, async caller =>
        {
            await placement.DeleteAggregateAsync(caller, request.Name, context.CancellationToken);
            return new DeleteAggregateResponse();
        });

    public override Task<ListAvailabilityZonesResponse> ListAvailabilityZones(ListAvailabilityZonesRequest request, ServerCallContext context)
        => Call(context, _ => placement.ListZonesAsync(context.CancellationToken));

    private Task<T> Call<T>(ServerCallContext context, Func<Caller, Task<T>> action)
        => GrpcApiCall.RunAsync(authenticator, context, action);
}
