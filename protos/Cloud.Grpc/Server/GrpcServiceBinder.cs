using System.Diagnostics.CodeAnalysis;
using Cloud.Grpc.Server;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;

namespace Cloud.Grpc;

/// <summary>
/// Collects the methods of one service for <c>MapGrpcService</c>. Each handler gets the service
/// instance of the call (from the request's scoped services, or built for the call).
/// </summary>
public sealed class GrpcServiceBinder<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TService>
    where TService : class
{
    private readonly ServerContext _server;
    private readonly List<MethodEndpoint> _methods = [];

    internal GrpcServiceBinder(ServerContext server) => _server = server;

    internal IReadOnlyList<MethodEndpoint> Methods => _methods;

    public void AddUnary<TRequest, TResponse>(Method<TRequest, TResponse> method, Func<TService, TRequest, ServerCallContext, Task<TResponse>> handler)
        where TRequest : IMessage<TRequest>
        where TResponse : IMessage<TResponse>
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(handler);
        if (method.Type != MethodType.Unary)
        {
            throw new ArgumentException($"{method.FullName} is {method.Type}; AddUnary takes unary methods.", nameof(method));
        }
        var server = _server;
        Add(method.FullName, http => ServerCallHandler.HandleAsync(http, method.ServiceName, method.Name, server, async call =>
        {
            var request = await call.ReadSingleRequestAsync(method.RequestParser).ConfigureAwait(false);
            await ServerCallHandler.InvokeWithServiceAsync<TService>(http, async service =>
            {
                var response = await handler(service, request, call).ConfigureAwait(false);
                // A handler that set a failing status instead of throwing sends no message.
                if (call.Status.StatusCode != StatusCode.OK)
                {
                    return;
                }
                if (response is null)
                {
                    throw new InvalidOperationException($"The handler of {method.FullName} returned null instead of a response message.");
                }
                await call.WriteMessageAsync(response, call.CancellationToken).ConfigureAwait(false);
            }).ConfigureAwait(false);
        }));
    }

    public void AddServerStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, Func<TService, TRequest, IServerStreamWriter<TResponse>, ServerCallContext, Task> handler)
        where TRequest : IMessage<TRequest>
        where TResponse : IMessage<TResponse>
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(handler);
        if (method.Type != MethodType.ServerStreaming)
        {
            throw new ArgumentException($"{method.FullName} is {method.Type}; AddServerStreaming takes server-streaming methods.", nameof(method));
        }
        var server = _server;
        Add(method.FullName, http => ServerCallHandler.HandleAsync(http, method.ServiceName, method.Name, server, async call =>
        {
            var request = await call.ReadSingleRequestAsync(method.RequestParser).ConfigureAwait(false);
            var writer = new ServerStreamWriter<TResponse>(call);
            await ServerCallHandler.InvokeWithServiceAsync<TService>(http, service => handler(service, request, writer, call)).ConfigureAwait(false);
        }));
    }

    private void Add(string path, RequestDelegate handler)
    {
        if (_methods.Any(m => m.Path == path))
        {
            throw new InvalidOperationException($"Method {path} is bound twice.");
        }
        _methods.Add(new MethodEndpoint(path, handler));
    }
}

internal sealed record MethodEndpoint(string Path, RequestDelegate Handler);

internal sealed class ServerStreamWriter<TResponse>(ServerCall call) : IServerStreamWriter<TResponse>
    where TResponse : IMessage<TResponse>
{
    public Task WriteAsync(TResponse message, CancellationToken cancellationToken = default)
        => call.WriteMessageAsync(message, cancellationToken);
}
