namespace Cloud.Grpc.Health.V1;

/// <summary>Wire bindings of grpc.health.v1.Health: method descriptors and a client.</summary>
public static class HealthGrpc
{
    public const string ServiceName = "grpc.health.v1.Health";

    public static readonly Method<HealthCheckRequest, HealthCheckResponse> CheckMethod =
        new(MethodType.Unary, ServiceName, "Check", HealthCheckRequest.Parser, HealthCheckResponse.Parser);

    public static readonly Method<HealthCheckRequest, HealthCheckResponse> WatchMethod =
        new(MethodType.ServerStreaming, ServiceName, "Watch", HealthCheckRequest.Parser, HealthCheckResponse.Parser);

    /// <summary>Client of the health service of any gRPC server.</summary>
    public sealed class HealthClient(CallInvoker invoker)
    {
        public Task<HealthCheckResponse> CheckAsync(HealthCheckRequest request, CallOptions options = default)
            => invoker.UnaryAsync(CheckMethod, request, options);

        public IAsyncServerStreamingCall<HealthCheckResponse> Watch(HealthCheckRequest request, CallOptions options = default)
            => invoker.ServerStreaming(WatchMethod, request, options);
    }
}
