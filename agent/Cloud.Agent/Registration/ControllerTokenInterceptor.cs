using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace Cloud.Agent.Registration;

/// <summary>Adds the agent's token to every call it makes to the controller (registry and image pulls).</summary>
internal sealed class ControllerTokenInterceptor(IOptions<AgentOptions> options) : Interceptor
{
    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
        TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        => continuation(request, WithToken(context));

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(
        TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation)
        => continuation(request, WithToken(context));

    private ClientInterceptorContext<TRequest, TResponse> WithToken<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context)
        where TRequest : class
        where TResponse : class
    {
        if (string.IsNullOrEmpty(options.Value.RegistrationToken))
        {
            return context;
        }
        var headers = context.Options.Headers ?? [];
        headers.Add("authorization", "Bearer " + options.Value.RegistrationToken);
        return new(context.Method, context.Host, context.Options.WithHeaders(headers));
    }
}
