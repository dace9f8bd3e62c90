using Cloud.Controller.Audit;
using Cloud.Controller.Auth;
using Cloud.Controller.Catalog;
using Cloud.Controller.Images;
using Cloud.Controller.Nodes;
using Cloud.Controller.Operations;
using Cloud.Controller.Tenants;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;

namespace Cloud.Controller.Api;

/// <summary>
/// cloud.compute.v1.Compute: the same API as REST, over gRPC, with the same error codes. Every
/// mutation also requires the write policy, so a reader is refused before the method runs.
/// </summary>
[Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Api)]
internal sealed class ComputeService(
    VmService vms,
    SnapshotService snapshots,
    VmWatch watch,
    CatalogService catalog,
    NodeQueries nodes,
    OperationQueries operations,
    TenantService tenants,
    TenantDeletions tenantDeletions,
    ImageService images,
    ConsoleOutputService consoleOutput,
    Trust.JoinTokens joinTokens,
    AuditQueries audit) : Compute.ComputeBase
{
    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> CreateVm(CreateVmRequest request, ServerCallContext context)
        => vms.CreateAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> CreateVms(CreateVmsRequest request, ServerCallContext context)
        => vms.CreateBatchAsync(CallerOf(context), request, context.CancellationToken);

    public override Task<Vm> GetVm(GetVmRequest request, ServerCallContext context)
        => vms.GetAsync(CallerOf(context), request.Id, context.CancellationToken);

    public override Task<ListVmsResponse> ListVms(ListVmsRequest request, ServerCallContext context)
        => vms.ListAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> DeleteVm(DeleteVmRequest request, ServerCallContext context)
        => vms.DeleteAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> StartVm(VmActionRequest request, ServerCallContext context)
        => vms.StartAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> StopVm(StopVmRequest request, ServerCallContext context)
        => vms.StopAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> RebootVm(VmActionRequest request, ServerCallContext context)
        => vms.RebootAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> ResizeVm(ResizeVmRequest request, ServerCallContext context)
        => vms.ResizeAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> MigrateVm(MigrateVmRequest request, ServerCallContext context)
        => vms.MigrateAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> CreateSnapshot(CreateSnapshotRequest request, ServerCallContext context)
        => snapshots.CreateAsync(CallerOf(context), request, context.CancellationToken);

    public override Task<Snapshot> GetSnapshot(GetSnapshotRequest request, ServerCallContext context)
        => snapshots.GetAsync(CallerOf(context), request.Id, context.CancellationToken);

    public override Task<ListSnapshotsResponse> ListSnapshots(ListSnapshotsRequest request, ServerCallContext context)
        => snapshots.ListAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> RestoreSnapshot(RestoreSnapshotRequest request, ServerCallContext context)
        => snapshots.RestoreAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> DeleteSnapshot(DeleteSnapshotRequest request, ServerCallContext context)
        => snapshots.DeleteAsync(CallerOf(context), request, context.CancellationToken);

    public override async Task WatchVms(WatchVmsRequest request, IServerStreamWriter<Vm> responseStream, ServerCallContext context)
    {
        var changes = watch.WatchAsync(CallerOf(context), LabelSelector.Parse(request.LabelSelector), context.CancellationToken);
        await foreach (var vm in changes)
        {
            await responseStream.WriteAsync(vm);
        }
    }

    public override Task<ListFlavorsResponse> ListFlavors(ListFlavorsRequest request, ServerCallContext context)
        => catalog.ListFlavorsAsync(CallerOf(context), context.CancellationToken);

    public override Task<ListImagesResponse> ListImages(ListImagesRequest request, ServerCallContext context)
        => images.ListAsync(CallerOf(context), context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Image> CreateImage(CreateImageRequest request, ServerCallContext context)
        => images.CreateAsync(CallerOf(context), request, context.CancellationToken);

    public override Task<Image> GetImage(GetImageRequest request, ServerCallContext context)
        => images.GetAsync(CallerOf(context), request.Id, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Image> DeleteImage(DeleteImageRequest request, ServerCallContext context)
        => images.DeleteAsync(CallerOf(context), request.Id, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Image> AddImageMember(ImageMemberRequest request, ServerCallContext context)
        => images.SetMemberAsync(CallerOf(context), request, member: true, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Image> RemoveImageMember(ImageMemberRequest request, ServerCallContext context)
        => images.SetMemberAsync(CallerOf(context), request, member: false, context.CancellationToken);

    public override Task<ListNodesResponse> ListNodes(ListNodesRequest request, ServerCallContext context)
        => nodes.ListAsync(CallerOf(context), context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Node> SetNodeSchedulable(SetNodeSchedulableRequest request, ServerCallContext context)
        => nodes.SetSchedulableAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> DrainNode(DrainNodeRequest request, ServerCallContext context)
        => nodes.DrainAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<JoinToken> CreateJoinToken(CreateJoinTokenRequest request, ServerCallContext context)
        => joinTokens.CreateAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<DeleteNodeResponse> DeleteNode(DeleteNodeRequest request, ServerCallContext context)
        => nodes.DeleteAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Flavor> AddFlavorAccess(FlavorAccessRequest request, ServerCallContext context)
        => catalog.SetAccessAsync(CallerOf(context), request, granted: true, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Flavor> RemoveFlavorAccess(FlavorAccessRequest request, ServerCallContext context)
        => catalog.SetAccessAsync(CallerOf(context), request, granted: false, context.CancellationToken);

    public override Task<Operation> GetOperation(GetOperationRequest request, ServerCallContext context)
        => operations.GetAsync(CallerOf(context), request.Id, context.CancellationToken);

    public override Task<ListOperationsResponse> ListOperations(ListOperationsRequest request, ServerCallContext context)
        => operations.ListAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> CancelOperation(CancelOperationRequest request, ServerCallContext context)
        => operations.CancelAsync(CallerOf(context), request.Id, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Tenant> CreateTenant(CreateTenantRequest request, ServerCallContext context)
        => tenants.CreateAsync(CallerOf(context), request, context.CancellationToken);

    public override Task<Tenant> GetTenant(GetTenantRequest request, ServerCallContext context)
        => tenants.GetAsync(CallerOf(context), request.Id, context.CancellationToken);

    public override Task<ListTenantsResponse> ListTenants(ListTenantsRequest request, ServerCallContext context)
        => tenants.ListAsync(CallerOf(context), context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Tenant> SetQuota(SetQuotaRequest request, ServerCallContext context)
        => tenants.SetQuotaAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<Operation> DeleteTenant(DeleteTenantRequest request, ServerCallContext context)
        => tenantDeletions.DeleteAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<ApiToken> CreateToken(CreateTokenRequest request, ServerCallContext context)
        => tenants.CreateTokenAsync(CallerOf(context), request, context.CancellationToken);

    public override Task<ListTokensResponse> ListTokens(ListTokensRequest request, ServerCallContext context)
        => tenants.ListTokensAsync(CallerOf(context), request, context.CancellationToken);

    [Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Write)]
    public override Task<ApiToken> RevokeToken(RevokeTokenRequest request, ServerCallContext context)
        => tenants.RevokeTokenAsync(CallerOf(context), request.Id, context.CancellationToken);

    /// <summary>The caller's deadline goes on to the agent that holds the log.</summary>
    public override Task<ConsoleOutput> GetConsoleOutput(GetConsoleOutputRequest request, ServerCallContext context)
        => consoleOutput.GetAsync(CallerOf(context), request, context.Deadline, context.CancellationToken);

    public override Task<ListAuditEventsResponse> ListAuditEvents(ListAuditEventsRequest request, ServerCallContext context)
        => audit.ListAsync(CallerOf(context), request, context.CancellationToken);

    private static Caller CallerOf(ServerCallContext context) => ApiCallers.Of(context);
}
