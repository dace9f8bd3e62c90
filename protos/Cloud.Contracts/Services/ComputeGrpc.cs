using Cloud.Grpc;

namespace Cloud.Contracts.Compute.V1;

/// <summary>Wire bindings of cloud.compute.v1.Compute, the tenant and operator API.</summary>
public static class ComputeGrpc
{
    public const string ServiceName = "cloud.compute.v1.Compute";

    public static readonly Method<CreateVmRequest, Operation> CreateVmMethod = Methods.Unary<CreateVmRequest, Operation>(ServiceName, "CreateVm");
    public static readonly Method<GetVmRequest, Vm> GetVmMethod = Methods.Unary<GetVmRequest, Vm>(ServiceName, "GetVm");
    public static readonly Method<ListVmsRequest, ListVmsResponse> ListVmsMethod = Methods.Unary<ListVmsRequest, ListVmsResponse>(ServiceName, "ListVms");
    public static readonly Method<DeleteVmRequest, Operation> DeleteVmMethod = Methods.Unary<DeleteVmRequest, Operation>(ServiceName, "DeleteVm");
    public static readonly Method<ListFlavorsRequest, ListFlavorsResponse> ListFlavorsMethod = Methods.Unary<ListFlavorsRequest, ListFlavorsResponse>(ServiceName, "ListFlavors");
    public static readonly Method<ListImagesRequest, ListImagesResponse> ListImagesMethod = Methods.Unary<ListImagesRequest, ListImagesResponse>(ServiceName, "ListImages");
    public static readonly Method<ListNodesRequest, ListNodesResponse> ListNodesMethod = Methods.Unary<ListNodesRequest, ListNodesResponse>(ServiceName, "ListNodes");
    public static readonly Method<GetOperationRequest, Operation> GetOperationMethod = Methods.Unary<GetOperationRequest, Operation>(ServiceName, "GetOperation");
    public static readonly Method<ListOperationsRequest, ListOperationsResponse> ListOperationsMethod = Methods.Unary<ListOperationsRequest, ListOperationsResponse>(ServiceName, "ListOperations");

    public abstract class ComputeBase
    {
        public virtual Task<Operation> CreateVm(CreateVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "CreateVm");
        public virtual Task<Vm> GetVm(GetVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "GetVm");
        public virtual Task<ListVmsResponse> ListVms(ListVmsRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListVms");
        public virtual Task<Operation> DeleteVm(DeleteVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "DeleteVm");
        public virtual Task<ListFlavorsResponse> ListFlavors(ListFlavorsRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListFlavors");
        public virtual Task<ListImagesResponse> ListImages(ListImagesRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListImages");
        public virtual Task<ListNodesResponse> ListNodes(ListNodesRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListNodes");
        public virtual Task<Operation> GetOperation(GetOperationRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "GetOperation");
        public virtual Task<ListOperationsResponse> ListOperations(ListOperationsRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListOperations");
    }

    public static void BindService<TService>(GrpcServiceBinder<TService> binder)
        where TService : ComputeBase
    {
        ArgumentNullException.ThrowIfNull(binder);
        binder.AddUnary(CreateVmMethod, (s, r, c) => s.CreateVm(r, c));
        binder.AddUnary(GetVmMethod, (s, r, c) => s.GetVm(r, c));
        binder.AddUnary(ListVmsMethod, (s, r, c) => s.ListVms(r, c));
        binder.AddUnary(DeleteVmMethod, (s, r, c) => s.DeleteVm(r, c));
        binder.AddUnary(ListFlavorsMethod, (s, r, c) => s.ListFlavors(r, c));
        binder.AddUnary(ListImagesMethod, (s, r, c) => s.ListImages(r, c));
        binder.AddUnary(ListNodesMethod, (s, r, c) => s.ListNodes(r, c));
        binder.AddUnary(GetOperationMethod, (s, r, c) => s.GetOperation(r, c));
        binder.AddUnary(ListOperationsMethod, (s, r, c) => s.ListOperations(r, c));
    }

    public sealed class ComputeClient(CallInvoker invoker)
    {
        public Task<Operation> CreateVmAsync(CreateVmRequest request, CallOptions options = default) => invoker.UnaryAsync(CreateVmMethod, request, options);
        public Task<Vm> GetVmAsync(GetVmRequest request, CallOptions options = default) => invoker.UnaryAsync(GetVmMethod, request, options);
        public Task<ListVmsResponse> ListVmsAsync(ListVmsRequest request, CallOptions options = default) => invoker.UnaryAsync(ListVmsMethod, request, options);
        public Task<Operation> DeleteVmAsync(DeleteVmRequest request, CallOptions options = default) => invoker.UnaryAsync(DeleteVmMethod, request, options);
        public Task<ListFlavorsResponse> ListFlavorsAsync(ListFlavorsRequest request, CallOptions options = default) => invoker.UnaryAsync(ListFlavorsMethod, request, options);
        public Task<ListImagesResponse> ListImagesAsync(ListImagesRequest request, CallOptions options = default) => invoker.UnaryAsync(ListImagesMethod, request, options);
        public Task<ListNodesResponse> ListNodesAsync(ListNodesRequest request, CallOptions options = default) => invoker.UnaryAsync(ListNodesMethod, request, options);
        public Task<Operation> GetOperationAsync(GetOperationRequest request, CallOptions options = default) => invoker.UnaryAsync(GetOperationMethod, request, options);
        public Task<ListOperationsResponse> ListOperationsAsync(ListOperationsRequest request, CallOptions options = default) => invoker.UnaryAsync(ListOperationsMethod, request, options);
    }
}
