using System.Diagnostics.CodeAnalysis;
using Cloud.Grpc;

namespace Cloud.Contracts.Compute.V1;

/// <summary>Wire bindings of cloud.compute.v1.Compute, the tenant and operator API.</summary>
public static class ComputeGrpc
{
    public const string ServiceName = "cloud.compute.v1.Compute";

    public static readonly Method<CreateVmRequest, Operation> CreateVmMethod = Methods.Unary<CreateVmRequest, Operation>(ServiceName, "CreateVm");
    public static readonly Method<CreateVmsRequest, Operation> CreateVmsMethod = Methods.Unary<CreateVmsRequest, Operation>(ServiceName, "CreateVms");
    public static readonly Method<GetVmRequest, Vm> GetVmMethod = Methods.Unary<GetVmRequest, Vm>(ServiceName, "GetVm");
    public static readonly Method<ListVmsRequest, ListVmsResponse> ListVmsMethod = Methods.Unary<ListVmsRequest, ListVmsResponse>(ServiceName, "ListVms");
    public static readonly Method<DeleteVmRequest, Operation> DeleteVmMethod = Methods.Unary<DeleteVmRequest, Operation>(ServiceName, "DeleteVm");
    public static readonly Method<ListFlavorsRequest, ListFlavorsResponse> ListFlavorsMethod = Methods.Unary<ListFlavorsRequest, ListFlavorsResponse>(ServiceName, "ListFlavors");
    public static readonly Method<ListImagesRequest, ListImagesResponse> ListImagesMethod = Methods.Unary<ListImagesRequest, ListImagesResponse>(ServiceName, "ListImages");
    public static readonly Method<ListNodesRequest, ListNodesResponse> ListNodesMethod = Methods.Unary<ListNodesRequest, ListNodesResponse>(ServiceName, "ListNodes");
    public static readonly Method<SetNodeSchedulableRequest, Node> SetNodeSchedulableMethod = Methods.Unary<SetNodeSchedulableRequest, Node>(ServiceName, "SetNodeSchedulable");
    public static readonly Method<DrainNodeRequest, Operation> DrainNodeMethod = Methods.Unary<DrainNodeRequest, Operation>(ServiceName, "DrainNode");
    public static readonly Method<GetOperationRequest, Operation> GetOperationMethod = Methods.Unary<GetOperationRequest, Operation>(ServiceName, "GetOperation");
    public static readonly Method<ListOperationsRequest, ListOperationsResponse> ListOperationsMethod = Methods.Unary<ListOperationsRequest, ListOperationsResponse>(ServiceName, "ListOperations");
    public static readonly Method<VmActionRequest, Operation> StartVmMethod = Methods.Unary<VmActionRequest, Operation>(ServiceName, "StartVm");
    public static readonly Method<StopVmRequest, Operation> StopVmMethod = Methods.Unary<StopVmRequest, Operation>(ServiceName, "StopVm");
    public static readonly Method<VmActionRequest, Operation> RebootVmMethod = Methods.Unary<VmActionRequest, Operation>(ServiceName, "RebootVm");
    public static readonly Method<ResizeVmRequest, Operation> ResizeVmMethod = Methods.Unary<ResizeVmRequest, Operation>(ServiceName, "ResizeVm");
    public static readonly Method<MigrateVmRequest, Operation> MigrateVmMethod = Methods.Unary<MigrateVmRequest, Operation>(ServiceName, "MigrateVm");
    public static readonly Method<CreateSnapshotRequest, Operation> CreateSnapshotMethod = Methods.Unary<CreateSnapshotRequest, Operation>(ServiceName, "CreateSnapshot");
    public static readonly Method<GetSnapshotRequest, Snapshot> GetSnapshotMethod = Methods.Unary<GetSnapshotRequest, Snapshot>(ServiceName, "GetSnapshot");
    public static readonly Method<ListSnapshotsRequest, ListSnapshotsResponse> ListSnapshotsMethod = Methods.Unary<ListSnapshotsRequest, ListSnapshotsResponse>(ServiceName, "ListSnapshots");
    public static readonly Method<RestoreSnapshotRequest, Operation> RestoreSnapshotMethod = Methods.Unary<RestoreSnapshotRequest, Operation>(ServiceName, "RestoreSnapshot");
    public static readonly Method<DeleteSnapshotRequest, Operation> DeleteSnapshotMethod = Methods.Unary<DeleteSnapshotRequest, Operation>(ServiceName, "DeleteSnapshot");
    public static readonly Method<CancelOperationRequest, Operation> CancelOperationMethod = Methods.Unary<CancelOperationRequest, Operation>(ServiceName, "CancelOperation");
    public static readonly Method<WatchVmsRequest, Vm> WatchVmsMethod = Methods.ServerStreaming<WatchVmsRequest, Vm>(ServiceName, "WatchVms");
    public static readonly Method<CreateTenantRequest, Tenant> CreateTenantMethod = Methods.Unary<CreateTenantRequest, Tenant>(ServiceName, "CreateTenant");
    public static readonly Method<GetTenantRequest, Tenant> GetTenantMethod = Methods.Unary<GetTenantRequest, Tenant>(ServiceName, "GetTenant");
    public static readonly Method<ListTenantsRequest, ListTenantsResponse> ListTenantsMethod = Methods.Unary<ListTenantsRequest, ListTenantsResponse>(ServiceName, "ListTenants");
    public static readonly Method<SetQuotaRequest, Tenant> SetQuotaMethod = Methods.Unary<SetQuotaRequest, Tenant>(ServiceName, "SetQuota");
    public static readonly Method<CreateTokenRequest, ApiToken> CreateTokenMethod = Methods.Unary<CreateTokenRequest, ApiToken>(ServiceName, "CreateToken");
    public static readonly Method<ListTokensRequest, ListTokensResponse> ListTokensMethod = Methods.Unary<ListTokensRequest, ListTokensResponse>(ServiceName, "ListTokens");
    public static readonly Method<RevokeTokenRequest, ApiToken> RevokeTokenMethod = Methods.Unary<RevokeTokenRequest, ApiToken>(ServiceName, "RevokeToken");
    public static readonly Method<FlavorAccessRequest, Flavor> AddFlavorAccessMethod = Methods.Unary<FlavorAccessRequest, Flavor>(ServiceName, "AddFlavorAccess");
    public static readonly Method<FlavorAccessRequest, Flavor> RemoveFlavorAccessMethod = Methods.Unary<FlavorAccessRequest, Flavor>(ServiceName, "RemoveFlavorAccess");
    public static readonly Method<CreateImageRequest, Image> CreateImageMethod = Methods.Unary<CreateImageRequest, Image>(ServiceName, "CreateImage");
    public static readonly Method<GetImageRequest, Image> GetImageMethod = Methods.Unary<GetImageRequest, Image>(ServiceName, "GetImage");
    public static readonly Method<DeleteImageRequest, Image> DeleteImageMethod = Methods.Unary<DeleteImageRequest, Image>(ServiceName, "DeleteImage");
    public static readonly Method<ImageMemberRequest, Image> AddImageMemberMethod = Methods.Unary<ImageMemberRequest, Image>(ServiceName, "AddImageMember");
    public static readonly Method<ImageMemberRequest, Image> RemoveImageMemberMethod = Methods.Unary<ImageMemberRequest, Image>(ServiceName, "RemoveImageMember");

    public abstract class ComputeBase
    {
        public virtual Task<Operation> CreateVm(CreateVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "CreateVm");
        public virtual Task<Operation> CreateVms(CreateVmsRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "CreateVms");
        public virtual Task<Vm> GetVm(GetVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "GetVm");
        public virtual Task<ListVmsResponse> ListVms(ListVmsRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListVms");
        public virtual Task<Operation> DeleteVm(DeleteVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "DeleteVm");
        public virtual Task<ListFlavorsResponse> ListFlavors(ListFlavorsRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListFlavors");
        public virtual Task<ListImagesResponse> ListImages(ListImagesRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListImages");
        public virtual Task<ListNodesResponse> ListNodes(ListNodesRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListNodes");
        public virtual Task<Node> SetNodeSchedulable(SetNodeSchedulableRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "SetNodeSchedulable");
        public virtual Task<Operation> DrainNode(DrainNodeRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "DrainNode");
        public virtual Task<Operation> GetOperation(GetOperationRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "GetOperation");
        public virtual Task<ListOperationsResponse> ListOperations(ListOperationsRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListOperations");
        public virtual Task<Operation> StartVm(VmActionRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "StartVm");
        public virtual Task<Operation> StopVm(StopVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "StopVm");
        public virtual Task<Operation> RebootVm(VmActionRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "RebootVm");
        public virtual Task<Operation> ResizeVm(ResizeVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ResizeVm");
        public virtual Task<Operation> MigrateVm(MigrateVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "MigrateVm");
        public virtual Task<Operation> CreateSnapshot(CreateSnapshotRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "CreateSnapshot");
        public virtual Task<Snapshot> GetSnapshot(GetSnapshotRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "GetSnapshot");
        public virtual Task<ListSnapshotsResponse> ListSnapshots(ListSnapshotsRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListSnapshots");
        public virtual Task<Operation> RestoreSnapshot(RestoreSnapshotRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "RestoreSnapshot");
        public virtual Task<Operation> DeleteSnapshot(DeleteSnapshotRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "DeleteSnapshot");
        public virtual Task<Operation> CancelOperation(CancelOperationRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "CancelOperation");
        public virtual Task WatchVms(WatchVmsRequest request, IServerStreamWriter<Vm> responseStream, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "WatchVms");
        public virtual Task<Tenant> CreateTenant(CreateTenantRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "CreateTenant");
        public virtual Task<Tenant> GetTenant(GetTenantRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "GetTenant");
        public virtual Task<ListTenantsResponse> ListTenants(ListTenantsRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListTenants");
        public virtual Task<Tenant> SetQuota(SetQuotaRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "SetQuota");
        public virtual Task<ApiToken> CreateToken(CreateTokenRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "CreateToken");
        public virtual Task<ListTokensResponse> ListTokens(ListTokensRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListTokens");
        public virtual Task<ApiToken> RevokeToken(RevokeTokenRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "RevokeToken");
        public virtual Task<Flavor> AddFlavorAccess(FlavorAccessRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "AddFlavorAccess");
        public virtual Task<Flavor> RemoveFlavorAccess(FlavorAccessRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "RemoveFlavorAccess");
        public virtual Task<Image> CreateImage(CreateImageRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "CreateImage");
        public virtual Task<Image> GetImage(GetImageRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "GetImage");
        public virtual Task<Image> DeleteImage(DeleteImageRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "DeleteImage");
        public virtual Task<Image> AddImageMember(ImageMemberRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "AddImageMember");
        public virtual Task<Image> RemoveImageMember(ImageMemberRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "RemoveImageMember");
    }

    public static void BindService<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TService>(GrpcServiceBinder<TService> binder)
        where TService : ComputeBase
    {
        ArgumentNullException.ThrowIfNull(binder);
        binder.AddUnary(CreateVmMethod, (s, r, c) => s.CreateVm(r, c));
        binder.AddUnary(CreateVmsMethod, (s, r, c) => s.CreateVms(r, c));
        binder.AddUnary(GetVmMethod, (s, r, c) => s.GetVm(r, c));
        binder.AddUnary(ListVmsMethod, (s, r, c) => s.ListVms(r, c));
        binder.AddUnary(DeleteVmMethod, (s, r, c) => s.DeleteVm(r, c));
        binder.AddUnary(ListFlavorsMethod, (s, r, c) => s.ListFlavors(r, c));
        binder.AddUnary(ListImagesMethod, (s, r, c) => s.ListImages(r, c));
        binder.AddUnary(ListNodesMethod, (s, r, c) => s.ListNodes(r, c));
        binder.AddUnary(SetNodeSchedulableMethod, (s, r, c) => s.SetNodeSchedulable(r, c));
        binder.AddUnary(DrainNodeMethod, (s, r, c) => s.DrainNode(r, c));
        binder.AddUnary(GetOperationMethod, (s, r, c) => s.GetOperation(r, c));
        binder.AddUnary(ListOperationsMethod, (s, r, c) => s.ListOperations(r, c));
        binder.AddUnary(StartVmMethod, (s, r, c) => s.StartVm(r, c));
        binder.AddUnary(StopVmMethod, (s, r, c) => s.StopVm(r, c));
        binder.AddUnary(RebootVmMethod, (s, r, c) => s.RebootVm(r, c));
        binder.AddUnary(ResizeVmMethod, (s, r, c) => s.ResizeVm(r, c));
        binder.AddUnary(MigrateVmMethod, (s, r, c) => s.MigrateVm(r, c));
        binder.AddUnary(CreateSnapshotMethod, (s, r, c) => s.CreateSnapshot(r, c));
        binder.AddUnary(GetSnapshotMethod, (s, r, c) => s.GetSnapshot(r, c));
        binder.AddUnary(ListSnapshotsMethod, (s, r, c) => s.ListSnapshots(r, c));
        binder.AddUnary(RestoreSnapshotMethod, (s, r, c) => s.RestoreSnapshot(r, c));
        binder.AddUnary(DeleteSnapshotMethod, (s, r, c) => s.DeleteSnapshot(r, c));
        binder.AddUnary(CancelOperationMethod, (s, r, c) => s.CancelOperation(r, c));
        binder.AddServerStreaming(WatchVmsMethod, (s, r, w, c) => s.WatchVms(r, w, c));
        binder.AddUnary(CreateTenantMethod, (s, r, c) => s.CreateTenant(r, c));
        binder.AddUnary(GetTenantMethod, (s, r, c) => s.GetTenant(r, c));
        binder.AddUnary(ListTenantsMethod, (s, r, c) => s.ListTenants(r, c));
        binder.AddUnary(SetQuotaMethod, (s, r, c) => s.SetQuota(r, c));
        binder.AddUnary(CreateTokenMethod, (s, r, c) => s.CreateToken(r, c));
        binder.AddUnary(ListTokensMethod, (s, r, c) => s.ListTokens(r, c));
        binder.AddUnary(RevokeTokenMethod, (s, r, c) => s.RevokeToken(r, c));
        binder.AddUnary(AddFlavorAccessMethod, (s, r, c) => s.AddFlavorAccess(r, c));
        binder.AddUnary(RemoveFlavorAccessMethod, (s, r, c) => s.RemoveFlavorAccess(r, c));
        binder.AddUnary(CreateImageMethod, (s, r, c) => s.CreateImage(r, c));
        binder.AddUnary(GetImageMethod, (s, r, c) => s.GetImage(r, c));
        binder.AddUnary(DeleteImageMethod, (s, r, c) => s.DeleteImage(r, c));
        binder.AddUnary(AddImageMemberMethod, (s, r, c) => s.AddImageMember(r, c));
        binder.AddUnary(RemoveImageMemberMethod, (s, r, c) => s.RemoveImageMember(r, c));
    }

    public sealed class ComputeClient(CallInvoker invoker)
    {
        public Task<Operation> CreateVmAsync(CreateVmRequest request, CallOptions options = default) => invoker.UnaryAsync(CreateVmMethod, request, options);
        public Task<Operation> CreateVmsAsync(CreateVmsRequest request, CallOptions options = default) => invoker.UnaryAsync(CreateVmsMethod, request, options);
        public Task<Vm> GetVmAsync(GetVmRequest request, CallOptions options = default) => invoker.UnaryAsync(GetVmMethod, request, options);
        public Task<ListVmsResponse> ListVmsAsync(ListVmsRequest request, CallOptions options = default) => invoker.UnaryAsync(ListVmsMethod, request, options);
        public Task<Operation> DeleteVmAsync(DeleteVmRequest request, CallOptions options = default) => invoker.UnaryAsync(DeleteVmMethod, request, options);
        public Task<ListFlavorsResponse> ListFlavorsAsync(ListFlavorsRequest request, CallOptions options = default) => invoker.UnaryAsync(ListFlavorsMethod, request, options);
        public Task<ListImagesResponse> ListImagesAsync(ListImagesRequest request, CallOptions options = default) => invoker.UnaryAsync(ListImagesMethod, request, options);
        public Task<ListNodesResponse> ListNodesAsync(ListNodesRequest request, CallOptions options = default) => invoker.UnaryAsync(ListNodesMethod, request, options);
        public Task<Node> SetNodeSchedulableAsync(SetNodeSchedulableRequest request, CallOptions options = default) => invoker.UnaryAsync(SetNodeSchedulableMethod, request, options);
        public Task<Operation> DrainNodeAsync(DrainNodeRequest request, CallOptions options = default) => invoker.UnaryAsync(DrainNodeMethod, request, options);
        public Task<Operation> GetOperationAsync(GetOperationRequest request, CallOptions options = default) => invoker.UnaryAsync(GetOperationMethod, request, options);
        public Task<ListOperationsResponse> ListOperationsAsync(ListOperationsRequest request, CallOptions options = default) => invoker.UnaryAsync(ListOperationsMethod, request, options);
        public Task<Operation> StartVmAsync(VmActionRequest request, CallOptions options = default) => invoker.UnaryAsync(StartVmMethod, request, options);
        public Task<Operation> StopVmAsync(StopVmRequest request, CallOptions options = default) => invoker.UnaryAsync(StopVmMethod, request, options);
        public Task<Operation> RebootVmAsync(VmActionRequest request, CallOptions options = default) => invoker.UnaryAsync(RebootVmMethod, request, options);
        public Task<Operation> ResizeVmAsync(ResizeVmRequest request, CallOptions options = default) => invoker.UnaryAsync(ResizeVmMethod, request, options);
        public Task<Operation> MigrateVmAsync(MigrateVmRequest request, CallOptions options = default) => invoker.UnaryAsync(MigrateVmMethod, request, options);
        public Task<Operation> CreateSnapshotAsync(CreateSnapshotRequest request, CallOptions options = default) => invoker.UnaryAsync(CreateSnapshotMethod, request, options);
        public Task<Snapshot> GetSnapshotAsync(GetSnapshotRequest request, CallOptions options = default) => invoker.UnaryAsync(GetSnapshotMethod, request, options);
        public Task<ListSnapshotsResponse> ListSnapshotsAsync(ListSnapshotsRequest request, CallOptions options = default) => invoker.UnaryAsync(ListSnapshotsMethod, request, options);
        public Task<Operation> RestoreSnapshotAsync(RestoreSnapshotRequest request, CallOptions options = default) => invoker.UnaryAsync(RestoreSnapshotMethod, request, options);
        public Task<Operation> DeleteSnapshotAsync(DeleteSnapshotRequest request, CallOptions options = default) => invoker.UnaryAsync(DeleteSnapshotMethod, request, options);
        public Task<Operation> CancelOperationAsync(CancelOperationRequest request, CallOptions options = default) => invoker.UnaryAsync(CancelOperationMethod, request, options);
        public IAsyncServerStreamingCall<Vm> WatchVms(WatchVmsRequest request, CallOptions options = default) => invoker.ServerStreaming(WatchVmsMethod, request, options);
        public Task<Tenant> CreateTenantAsync(CreateTenantRequest request, CallOptions options = default) => invoker.UnaryAsync(CreateTenantMethod, request, options);
        public Task<Tenant> GetTenantAsync(GetTenantRequest request, CallOptions options = default) => invoker.UnaryAsync(GetTenantMethod, request, options);
        public Task<ListTenantsResponse> ListTenantsAsync(ListTenantsRequest request, CallOptions options = default) => invoker.UnaryAsync(ListTenantsMethod, request, options);
        public Task<Tenant> SetQuotaAsync(SetQuotaRequest request, CallOptions options = default) => invoker.UnaryAsync(SetQuotaMethod, request, options);
        public Task<ApiToken> CreateTokenAsync(CreateTokenRequest request, CallOptions options = default) => invoker.UnaryAsync(CreateTokenMethod, request, options);
        public Task<ListTokensResponse> ListTokensAsync(ListTokensRequest request, CallOptions options = default) => invoker.UnaryAsync(ListTokensMethod, request, options);
        public Task<ApiToken> RevokeTokenAsync(RevokeTokenRequest request, CallOptions options = default) => invoker.UnaryAsync(RevokeTokenMethod, request, options);
        public Task<Flavor> AddFlavorAccessAsync(FlavorAccessRequest request, CallOptions options = default) => invoker.UnaryAsync(AddFlavorAccessMethod, request, options);
        public Task<Flavor> RemoveFlavorAccessAsync(FlavorAccessRequest request, CallOptions options = default) => invoker.UnaryAsync(RemoveFlavorAccessMethod, request, options);
        public Task<Image> CreateImageAsync(CreateImageRequest request, CallOptions options = default) => invoker.UnaryAsync(CreateImageMethod, request, options);
        public Task<Image> GetImageAsync(GetImageRequest request, CallOptions options = default) => invoker.UnaryAsync(GetImageMethod, request, options);
        public Task<Image> DeleteImageAsync(DeleteImageRequest request, CallOptions options = default) => invoker.UnaryAsync(DeleteImageMethod, request, options);
        public Task<Image> AddImageMemberAsync(ImageMemberRequest request, CallOptions options = default) => invoker.UnaryAsync(AddImageMemberMethod, request, options);
        public Task<Image> RemoveImageMemberAsync(ImageMemberRequest request, CallOptions options = default) => invoker.UnaryAsync(RemoveImageMemberMethod, request, options);
    }
}
