using Cloud.Grpc;
using Google.Protobuf;

namespace Cloud.Contracts;

/// <summary>Builds method descriptors for the hand-written service bindings in this folder.</summary>
internal static class Methods
{
    public static Method<TRequest, TResponse> Unary<TRequest, TResponse>(string service, string name)
        where TRequest : IMessage<TRequest>, new()
        where TResponse : IMessage<TResponse>, new()
        => new(MethodType.Unary, service, name, new MessageParser<TRequest>(() => new TRequest()), new MessageParser<TResponse>(() => new TResponse()));

    public static Method<TRequest, TResponse> ServerStreaming<TRequest, TResponse>(string service, string name)
        where TRequest : IMessage<TRequest>, new()
        where TResponse : IMessage<TResponse>, new()
        => new(MethodType.ServerStreaming, service, name, new MessageParser<TRequest>(() => new TRequest()), new MessageParser<TResponse>(() => new TResponse()));

    public static RpcException Unimplemented(string service, string name)
        => new(StatusCode.Unimplemented, $"Method {service}/{name} is not implemented by this server.");
}
