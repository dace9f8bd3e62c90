using System.Diagnostics.CodeAnalysis;
using Cloud.Grpc;

namespace Cloud.Contracts.Compute.V1;

/// <summary>Wire bindings of cloud.compute.v1.Placement: dry runs, decisions, server groups, aggregates, zones.</summary>
public static class PlacementGrpc
{
    public const string ServiceName = "cloud.compute.v1.Placement";

    public static readonly Method<DryRunRequest, DryRunResponse> DryRunMethod = Methods.Unary<DryRunRequest, DryRunResponse>(ServiceName, "DryRun");
    public static readonly Method<PlanCapacityRequest, CapacityPlan> PlanCapacityMethod = Methods.Unary<PlanCapacityRequest, CapacityPlan>(ServiceName, "PlanCapacity");
    public static readonly Method<GetPlacementDecisionRequest, PlacementDecision> GetPlacementDecisionMethod = Methods.Unary<GetPlacementDecisionRequest, PlacementDecision>(ServiceName, "GetPlacementDecision");
    public static readonly Method<ListPlacementDecisionsRequest, ListPlacementDecisionsResponse> ListPlacementDecisionsMethod = Methods.Unary<ListPlacementDecisionsRequest, ListPlacementDecisionsResponse>(ServiceName, "ListPlacementDecisions");
    public static readonly Method<CreateServerGroupRequest, ServerGroup> CreateServerGroupMethod = Methods.Unary<CreateServerGroupRequest, ServerGroup>(ServiceName, "CreateServerGroup");
    public static readonly Method<GetServerGroupRequest, ServerGroup> GetServerGroupMethod = Methods.Unary<GetServerGroupRequest, ServerGroup>(ServiceName, "GetServerGroup");
    public static readonly Method<ListServerGroupsRequest, ListServerGroupsResponse> ListServerGroupsMethod = Methods.Unary<ListServerGroupsRequest, ListServerGroupsResponse>(ServiceName, "ListServerGroups");
    public static readonly Method<DeleteServerGroupRequest, DeleteServerGroupResponse> DeleteServerGroupMethod = Methods.Unary<DeleteServerGroupRequest, DeleteServerGroupResponse>(ServiceName, "DeleteServerGroup");
    public static readonly Method<CreateAggregateRequest, Aggregate> CreateAggregateMethod = Methods.Unary<CreateAggregateRequest, Aggregate>(ServiceName, "CreateAggregate");
    public static readonly Method<ListAggregatesRequest, ListAggregatesResponse> ListAggregatesMethod = Methods.Unary<ListAggregatesRequest, ListAggregatesResponse>(ServiceName, "ListAggregates");
    public static readonly Method<AggregateNodeRequest, Aggregate> AddAggregateNodeMethod = Methods.Unary<AggregateNodeRequest, Aggregate>(ServiceName, "AddAggregateNode");
    public static readonly Method<AggregateNodeRequest, Aggregate> RemoveAggregateNodeMethod = Methods.Unary<AggregateNodeRequest, Aggregate>(ServiceName, "RemoveAggregateNode");
    public static readonly Method<DeleteAggregateRequest, DeleteAggregateResponse> DeleteAggregateMethod = Methods.Unary<DeleteAggregateRequest, DeleteAggregateResponse>(ServiceName, "DeleteAggregate");
    public static readonly Method<ListAvailabilityZonesRequest, ListAvailabilityZonesResponse> ListAvailabilityZonesMethod = Methods.Unary<ListAvailabilityZonesRequest, ListAvailabilityZonesResponse>(ServiceName, "ListAvailabilityZones");

    public abstract class PlacementBase
    {
        public virtual Task<DryRunResponse> DryRun(DryRunRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "DryRun");
        public virtual Task<CapacityPlan> PlanCapacity(PlanCapacityRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "PlanCapacity");
        public virtual Task<PlacementDecision> GetPlacementDecision(GetPlacementDecisionRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "GetPlacementDecision");
        public virtual Task<ListPlacementDecisionsResponse> ListPlacementDecisions(ListPlacementDecisionsRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListPlacementDecisions");
        public virtual Task<ServerGroup> CreateServerGroup(CreateServerGroupRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "CreateServerGroup");
        public virtual Task<ServerGroup> GetServerGroup(GetServerGroupRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "GetServerGroup");
        public virtual Task<ListServerGroupsResponse> ListServerGroups(ListServerGroupsRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListServerGroups");
        public virtual Task<DeleteServerGroupResponse> DeleteServerGroup(DeleteServerGroupRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "DeleteServerGroup");
        public virtual Task<Aggregate> CreateAggregate(CreateAggregateRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "CreateAggregate");
        public virtual Task<ListAggregatesResponse> ListAggregates(ListAggregatesRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListAggregates");
        public virtual Task<Aggregate> AddAggregateNode(AggregateNodeRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "AddAggregateNode");
        public virtual Task<Aggregate> RemoveAggregateNode(AggregateNodeRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "RemoveAggregateNode");
        public virtual Task<DeleteAggregateResponse> DeleteAggregate(DeleteAggregateRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "DeleteAggregate");
        public virtual Task<ListAvailabilityZonesResponse> ListAvailabilityZones(ListAvailabilityZonesRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListAvailabilityZones");
    }

    public static void BindService<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TService>(GrpcServiceBinder<TService> binder)
        where TService : PlacementBase
    {
        ArgumentNullException.ThrowIfNull(binder);
        binder.AddUnary(DryRunMethod, (s, r, c) => s.DryRun(r, c));
        binder.AddUnary(PlanCapacityMethod, (s, r, c) => s.PlanCapacity(r, c));
        binder.AddUnary(GetPlacementDecisionMethod, (s, r, c) => s.GetPlacementDecision(r, c));
        binder.AddUnary(ListPlacementDecisionsMethod, (s, r, c) => s.ListPlacementDecisions(r, c));
        binder.AddUnary(CreateServerGroupMethod, (s, r, c) => s.CreateServerGroup(r, c));
        binder.AddUnary(GetServerGroupMethod, (s, r, c) => s.GetServerGroup(r, c));
        binder.AddUnary(ListServerGroupsMethod, (s, r, c) => s.ListServerGroups(r, c));
        binder.AddUnary(DeleteServerGroupMethod, (s, r, c) => s.DeleteServerGroup(r, c));
        binder.AddUnary(CreateAggregateMethod, (s, r, c) => s.CreateAggregate(r, c));
        binder.AddUnary(ListAggregatesMethod, (s, r, c) => s.ListAggregates(r, c));
        binder.AddUnary(AddAggregateNodeMethod, (s, r, c) => s.AddAggregateNode(r, c));
        binder.AddUnary(RemoveAggregateNodeMethod, (s, r, c) => s.RemoveAggregateNode(r, c));
        binder.AddUnary(DeleteAggregateMethod, (s, r, c) => s.DeleteAggregate(r, c));
        binder.AddUnary(ListAvailabilityZonesMethod, (s, r, c) => s.ListAvailabilityZones(r, c));
    }

    public sealed class PlacementClient(CallInvoker invoker)
    {
        public Task<DryRunResponse> DryRunAsync(DryRunRequest request, CallOptions options = default) => invoker.UnaryAsync(DryRunMethod, request, options);
        public Task<CapacityPlan> PlanCapacityAsync(PlanCapacityRequest request, CallOptions options = default) => invoker.UnaryAsync(PlanCapacityMethod, request, options);
        public Task<PlacementDecision> GetPlacementDecisionAsync(GetPlacementDecisionRequest request, CallOptions options = default) => invoker.UnaryAsync(GetPlacementDecisionMethod, request, options);
        public Task<ListPlacementDecisionsResponse> ListPlacementDecisionsAsync(ListPlacementDecisionsRequest request, CallOptions options = default) => invoker.UnaryAsync(ListPlacementDecisionsMethod, request, options);
        public Task<ServerGroup> CreateServerGroupAsync(CreateServerGroupRequest request, CallOptions options = default) => invoker.UnaryAsync(CreateServerGroupMethod, request, options);
        public Task<ServerGroup> GetServerGroupAsync(GetServerGroupRequest request, CallOptions options = default) => invoker.UnaryAsync(GetServerGroupMethod, request, options);
        public Task<ListServerGroupsResponse> ListServerGroupsAsync(ListServerGroupsRequest request, CallOptions options = default) => invoker.UnaryAsync(ListServerGroupsMethod, request, options);
        public Task<DeleteServerGroupResponse> DeleteServerGroupAsync(DeleteServerGroupRequest request, CallOptions options = default) => invoker.UnaryAsync(DeleteServerGroupMethod, request, options);
        public Task<Aggregate> CreateAggregateAsync(CreateAggregateRequest request, CallOptions options = default) => invoker.UnaryAsync(CreateAggregateMethod, request, options);
        public Task<ListAggregatesResponse> ListAggregatesAsync(ListAggregatesRequest request, CallOptions options = default) => invoker.UnaryAsync(ListAggregatesMethod, request, options);
        public Task<Aggregate> AddAggregateNodeAsync(AggregateNodeRequest request, CallOptions options = default) => invoker.UnaryAsync(AddAggregateNodeMethod, request, options);
        public Task<Aggregate> RemoveAggregateNodeAsync(AggregateNodeRequest request, CallOptions options = default) => invoker.UnaryAsync(RemoveAggregateNodeMethod, request, options);
        public Task<DeleteAggregateResponse> DeleteAggregateAsync(DeleteAggregateRequest request, CallOptions options = default) => invoker.UnaryAsync(DeleteAggregateMethod, request, options);
        public Task<ListAvailabilityZonesResponse> ListAvailabilityZonesAsync(ListAvailabilityZonesRequest request, CallOptions options = default) => invoker.UnaryAsync(ListAvailabilityZonesMethod, request, options);
    }
}
