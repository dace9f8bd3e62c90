using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Capacity;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;

namespace Cloud.Controller.Placement;

/// <summary>
/// cloud.compute.v1.Placement: the same API as REST under /v1/placement, with the same error codes.
/// Every mutation also requires the write policy, so a reader is refused before the method runs.
/// </summary>
[Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Api)]
internal sealed class PlacementGrpcService(PlacementService placement, CapacityService capacity) : Cloud.Contracts.Compute.V1.Placement.PlacementBase
{
    public override Task<CapacityPlan> PlanCapacity(PlanCapacityRequest request, ServerCallContext context)
        => capacity.PlanAsync(CallerOf(context), request, context.CancellationToken);

    public override Task<DryRunResponse> DryRun(DryRunRequest request, ServerCallContext context)
        => placement.DryRunAsync(CallerOf(context), request, context.CancellationToken);

    public override Task<PlacementDecision> GetPlacementDecision(GetPlacementDecisionRequest request, ServerCallContext context)
        => placement.GetDecisionAsync(CallerOf(context), request.Id, context.CancellationToken);

    public override Task<ListPlacementDecisionsResponse> ListPlacementDecisions(ListPlacementDecisionsRequest request, ServerCallContext context)
        => placement.ListDecisionsAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<ServerGroup> CreateServerGroup(CreateServerGroupRequest request, ServerCallContext context)
        => placement.CreateServerGroupAsync(CallerOf(context), request, context.CancellationToken);

    public override Task<ServerGroup> GetServerGroup(GetServerGroupRequest request, ServerCallContext context)
        => placement.GetServerGroupAsync(CallerOf(context), request.Id, context.CancellationToken);

    public override Task<ListServerGroupsResponse> ListServerGroups(ListServerGroupsRequest request, ServerCallContext context)
        => placement.ListServerGroupsAsync(CallerOf(context), context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override async Task<DeleteServerGroupResponse> DeleteServerGroup(DeleteServerGroupRequest request, ServerCallContext context)
    {
        await placement.DeleteServerGroupAsync(CallerOf(context), request.Id, context.CancellationToken);
        return new DeleteServerGroupResponse();
    }

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Aggregate> CreateAggregate(CreateAggregateRequest request, ServerCallContext context)
        => placement.CreateAggregateAsync(CallerOf(context), request, context.CancellationToken);

    public override Task<ListAggregatesResponse> ListAggregates(ListAggregatesRequest request, ServerCallContext context)
        => placement.ListAggregatesAsync(CallerOf(context), context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Aggregate> AddAggregateNode(AggregateNodeRequest request, ServerCallContext context)
        => placement.AddAggregateNodeAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Aggregate> RemoveAggregateNode(AggregateNodeRequest request, ServerCallContext context)
        => placement.RemoveAggregateNodeAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override async Task<DeleteAggregateResponse> DeleteAggregate(DeleteAggregateRequest request, ServerCallContext context)
    {
        await placement.DeleteAggregateAsync(CallerOf(context), request.Name, context.CancellationToken);
        return new DeleteAggregateResponse();
    }

    public override Task<ListAvailabilityZonesResponse> ListAvailabilityZones(ListAvailabilityZonesRequest request, ServerCallContext context)
        => placement.ListZonesAsync(CallerOf(context), context.CancellationToken);

    private static Caller CallerOf(ServerCallContext context) => ApiCallers.Of(context);
}
