using System.Diagnostics.CodeAnalysis;
using Cloud.Grpc;

namespace Cloud.Contracts.Node.V1;

/// <summary>Wire bindings of cloud.node.v1.NodeRegistry, the controller service agents call.</summary>
public static class NodeRegistryGrpc
{
    public const string ServiceName = "cloud.node.v1.NodeRegistry";

    public static readonly Method<RegisterRequest, RegisterResponse> RegisterMethod = Methods.Unary<RegisterRequest, RegisterResponse>(ServiceName, "Register");
    public static readonly Method<HeartbeatRequest, HeartbeatResponse> HeartbeatMethod = Methods.Unary<HeartbeatRequest, HeartbeatResponse>(ServiceName, "Heartbeat");

    public abstract class NodeRegistryBase
    {
        public virtual Task<RegisterResponse> Register(RegisterRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "Register");
        public virtual Task<HeartbeatResponse> Heartbeat(HeartbeatRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "Heartbeat");
    }

    public static void BindService<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TService>(GrpcServiceBinder<TService> binder)
        where TService : NodeRegistryBase
    {
        ArgumentNullException.ThrowIfNull(binder);
        binder.AddUnary(RegisterMethod, (s, r, c) => s.Register(r, c));
        binder.AddUnary(HeartbeatMethod, (s, r, c) => s.Heartbeat(r, c));
    }

    public sealed class NodeRegistryClient(CallInvoker invoker)
    {
        public Task<RegisterResponse> RegisterAsync(RegisterRequest request, CallOptions options = default) => invoker.UnaryAsync(RegisterMethod, request, options);
        public Task<HeartbeatResponse> HeartbeatAsync(HeartbeatRequest request, CallOptions options = default) => invoker.UnaryAsync(HeartbeatMethod, request, options);
    }
}
