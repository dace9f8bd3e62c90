using Cloud.Controller.Auth;
using Cloud.Controller.Catalog;
using Cloud.Controller.Images;
using Cloud.Controller.Nodes;
using Cloud.Controller.Operations;
using Cloud.Controller.Tenants;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Api;

/// <summary>cloud.compute.v1.Compute: the same API as REST, over gRPC, with the same error codes.</summary>
internal sealed class ComputeService(
    TokenAuthenticator authenticator,
    VmService vms,
    SnapshotService snapshots,
    VmWatch watch,
    CatalogService catalog,
    NodeQueries nodes,
    OperationQueries operations,
    TenantService tenants,
    ImageService images) : Compute.ComputeBase
{
    public override Task<Operation> CreateVm(CreateVmRequest request, ServerCallContext context)
        => Call(context, caller => vms.CreateAsync(caller, request, context.CancellationToken));

    public override Task<Operation> CreateVms(CreateVmsRequest request, ServerCallContext context)
        => Call(context, caller => vms.CreateBatchAsync(caller, request, context.CancellationToken));

    public override Task<Vm> GetVm(GetVmRequest request, ServerCallContext context)
        => Call(context, caller => vms.GetAsync(caller, request.Id, context.CancellationToken));

    public override Task<ListVmsResponse> ListVms(ListVmsRequest request, ServerCallContext context)
        => Call(context, caller => vms.ListAsync(caller, request, context.CancellationToken));

    public override Task<Operation> DeleteVm(DeleteVmRequest request, ServerCallContext context)
        => Call(context, caller => vms.DeleteAsync(caller, request, context.CancellationToken));

    public override Task<Operation> StartVm(VmActionRequest request, ServerCallContext context)
        => Call(context, caller => vms.StartAsync(caller, request, context.CancellationToken));

    public override Task<Operation> StopVm(StopVmRequest request, ServerCallContext context)
        => Call(context, caller => vms.StopAsync(caller, request, context.CancellationToken));

    public override Task<Operation> RebootVm(VmActionRequest request, ServerCallContext context)
        => Call(context, caller => vms.RebootAsync(caller, request, context.CancellationToken));

    public override Task<Operation> ResizeVm(ResizeVmRequest request, ServerCallContext context)
        => Call(context, caller => vms.ResizeAsync(caller, request, context.CancellationToken));

    public override Task<Operation> MigrateVm(MigrateVmRequest request, ServerCallContext context)
        => Call(context, caller => vms.MigrateAsync(caller, request, context.CancellationToken));

    public override Task<Operation> CreateSnapshot(CreateSnapshotRequest request, ServerCallContext context)
        => Call(context, caller => snapshots.CreateAsync(caller, request, context.CancellationToken));

    public override Task<Snapshot> GetSnapshot(GetSnapshotRequest request, ServerCallContext context)
        => Call(context, caller => snapshots.GetAsync(caller, request.Id, context.CancellationToken));

    public override Task<ListSnapshotsResponse> ListSnapshots(ListSnapshotsRequest request, ServerCallContext context)
        => Call(context, caller => snapshots.ListAsync(caller, request, context.CancellationToken));

    public override Task<Operation> RestoreSnapshot(RestoreSnapshotRequest request, ServerCallContext context)
        => Call(context, caller => snapshots.RestoreAsync(caller, request, context.CancellationToken));

    public override Task<Operation> DeleteSnapshot(DeleteSnapshotRequest request, ServerCallContext context)
        => Call(context, caller => snapshots.DeleteAsync(caller, request, context.CancellationToken));

    public override async Task WatchVms(WatchVmsRequest request, IServerStreamWriter<Vm> responseStream, ServerCallContext context)
    {
        var changes = await Call(context, caller => Task.FromResult(watch.WatchAsync(caller, LabelSelector.Parse(request.LabelSelector), context.CancellationToken)));
        await foreach (var vm in changes)
        {
            await responseStream.WriteAsync(vm);
        }
    }

    public override Task<ListFlavorsResponse> ListFlavors(ListFlavorsRequest request, ServerCallContext context)
        => Call(context, caller => catalog.ListFlavorsAsync(caller, context.CancellationToken));

    public override Task<ListImagesResponse> ListImages(ListImagesRequest request, ServerCallContext context)
        => Call(context, caller => images.ListAsync(caller, context.CancellationToken));

    public override Task<Image> CreateImage(CreateImageRequest request, ServerCallContext context)
        => Call(context, caller => images.CreateAsync(caller, request, context.CancellationToken));

    public override Task<Image> GetImage(GetImageRequest request, ServerCallContext context)
        => Call(context, caller => images.GetAsync(caller, request.Id, context.CancellationToken));

    public override Task<Image> DeleteImage(DeleteImageRequest request, ServerCallContext context)
        => Call(context, caller => images.DeleteAsync(caller, request.Id, context.CancellationToken));

    public override Task<Image> AddImageMember(ImageMemberRequest request, ServerCallContext context)
        => Call(context, caller => images.SetMemberAsync(caller, request, member: true, context.CancellationToken));

    public override Task<Image> RemoveImageMember(ImageMemberRequest request, ServerCallContext context)
        => Call(context, caller => images.SetMemberAsync(caller, request, member: false, context.CancellationToken));

    public override Task<ListNodesResponse> ListNodes(ListNodesRequest request, ServerCallContext context)
        => Call(context, caller => nodes.ListAsync(caller, context.CancellationToken));

    public override Task<Node> SetNodeSchedulable(SetNodeSchedulableRequest request, ServerCallContext context)
        => Call(context, caller => nodes.SetSchedulableAsync(caller, request, context.CancellationToken));

    public override Task<Operation> DrainNode(DrainNodeRequest request, ServerCallContext context)
        => Call(context, caller => nodes.DrainAsync(caller, request, context.CancellationToken));

    public override Task<Flavor> AddFlavorAccess(FlavorAccessRequest request, ServerCallContext context)
        => Call(context, caller => catalog.SetAccessAsync(caller, request, granted: true, context.CancellationToken));

    public override Task<Flavor> RemoveFlavorAccess(FlavorAccessRequest request, ServerCallContext context)
        => Call(context, caller => catalog.SetAccessAsync(caller, request, granted: false, context.CancellationToken));

    public override Task<Operation> GetOperation(GetOperationRequest request, ServerCallContext context)
        => Call(context, caller => operations.GetAsync(caller, request.Id, context.CancellationToken));

    public override Task<ListOperationsResponse> ListOperations(ListOperationsRequest request, ServerCallContext context)
        => Call(context, caller => operations.ListAsync(caller, request, context.CancellationToken));

    public override Task<Operation> CancelOperation(CancelOperationRequest request, ServerCallContext context)
        => Call(context, caller => operations.CancelAsync(caller, request.Id, context.CancellationToken));

    public override Task<Tenant> CreateTenant(CreateTenantRequest request, ServerCallContext context)
        => Call(context, caller => tenants.CreateAsync(caller, request, context.CancellationToken));

    public override Task<Tenant> GetTenant(GetTenantRequest request, ServerCallContext context)
        => Call(context, caller => tenants.GetAsync(caller, request.Id, context.CancellationToken));

    public override Task<ListTenantsResponse> ListTenants(ListTenantsRequest request, ServerCallContext context)
        => Call(context, caller => tenants.ListAsync(caller, context.CancellationToken));

    public override Task<Tenant> SetQuota(SetQuotaRequest request, ServerCallContext context)
        => Call(context, caller => tenants.SetQuotaAsync(caller, request, context.CancellationToken));

    public override Task<ApiToken> CreateToken(CreateTokenRequest request, ServerCallContext context)
        => Call(context, caller => tenants.CreateTokenAsync(caller, request, context.CancellationToken));

    public override Task<ListTokensResponse> ListTokens(ListTokensRequest request, ServerCallContext context)
        => Call(context, caller => tenants.ListTokensAsync(caller, request, context.CancellationToken));

    public override Task<ApiToken> RevokeToken(RevokeTokenRequest request, ServerCallContext context)
        => Call(context, caller => tenants.RevokeTokenAsync(caller, request.Id, context.CancellationToken));

    private Task<T> Call<T>(ServerCallContext context, Func<Caller, Task<T>> action)
        => GrpcApiCall.RunAsync(authenticator, context, action);
}
