using Cloud.Controller.Auth;
using Cloud.Controller.Catalog;
using Cloud.Controller.Nodes;
using Cloud.Controller.Operations;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Cloud.Grpc;

namespace Cloud.Controller.Api;

/// <summary>cloud.compute.v1.Compute: the same API as REST, over gRPC, with the same error codes.</summary>
internal sealed class ComputeService(
    TokenAuthenticator authenticator,
    VmService vms,
    CatalogService catalog,
    NodeQueries nodes,
    OperationQueries operations) : ComputeGrpc.ComputeBase
{
    public override Task<Operation> CreateVm(CreateVmRequest request, ServerCallContext context)
        => Call(context, caller => vms.CreateAsync(caller, request, context.CancellationToken));

    public override Task<Vm> GetVm(GetVmRequest request, ServerCallContext context)
        => Call(context, caller => vms.GetAsync(caller, request.Id, context.CancellationToken));

    public override Task<ListVmsResponse> ListVms(ListVmsRequest request, ServerCallContext context)
        => Call(context, caller => vms.ListAsync(caller, request, context.CancellationToken));

    public override Task<Operation> DeleteVm(DeleteVmRequest request, ServerCallContext context)
        => Call(context, caller => vms.DeleteAsync(caller, request, context.CancellationToken));

    public override Task<ListFlavorsResponse> ListFlavors(ListFlavorsRequest request, ServerCallContext context)
        => Call(context, caller => catalog.ListFlavorsAsync(caller, context.CancellationToken));

    public override Task<ListImagesResponse> ListImages(ListImagesRequest request, ServerCallContext context)
        => Call(context, _ => catalog.ListImagesAsync(context.CancellationToken));

    public override Task<ListNodesResponse> ListNodes(ListNodesRequest request, ServerCallContext context)
        => Call(context, caller => nodes.ListAsync(caller, context.CancellationToken));

    public override Task<Operation> GetOperation(GetOperationRequest request, ServerCallContext context)
        => Call(context, caller => operations.GetAsync(caller, request.Id, context.CancellationToken));

    public override Task<ListOperationsResponse> ListOperations(ListOperationsRequest request, ServerCallContext context)
        => Call(context, caller => operations.ListAsync(caller, request, context.CancellationToken));

    private async Task<T> Call<T>(ServerCallContext context, Func<Caller, Task<T>> action)
    {
        try
        {
            var caller = authenticator.AuthenticateApi(context.RequestHeaders.GetValue("authorization"))
                ?? throw new ApiException(StatusCode.Unauthenticated, "Send a valid API token in the authorization metadata: Bearer <token>.");
            return await action(caller);
        }
        catch (ApiException e)
        {
            throw new RpcException(new Status(e.Code, e.Message));
        }
    }
}
