using Cloud.Grpc;

namespace Cloud.Contracts.Node.V1;

/// <summary>Wire bindings of cloud.node.v1.ImageSource, the controller service agents pull image bytes from.</summary>
public static class ImageSourceGrpc
{
    public const string ServiceName = "cloud.node.v1.ImageSource";

    public static readonly Method<ReadImageRequest, ImageChunk> ReadImageMethod = Methods.ServerStreaming<ReadImageRequest, ImageChunk>(ServiceName, "ReadImage");

    public abstract class ImageSourceBase
    {
        public virtual Task ReadImage(ReadImageRequest request, IServerStreamWriter<ImageChunk> responseStream, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ReadImage");
    }

    public static void BindService<TService>(GrpcServiceBinder<TService> binder)
        where TService : ImageSourceBase
    {
        ArgumentNullException.ThrowIfNull(binder);
        binder.AddServerStreaming(ReadImageMethod, (s, r, w, c) => s.ReadImage(r, w, c));
    }

    public sealed class ImageSourceClient(CallInvoker invoker)
    {
        public IAsyncServerStreamingCall<ImageChunk> ReadImage(ReadImageRequest request, CallOptions options = default) => invoker.ServerStreaming(ReadImageMethod, request, options);
    }
}
