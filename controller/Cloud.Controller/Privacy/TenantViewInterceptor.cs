using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Cloud.Controller.Privacy;

/// <summary>
/// <see cref="TenantViews"/> on the gRPC wire: every answer and every streamed message of the
/// public services, and every refusal (this interceptor runs inside the one that maps
/// <see cref="ApiException"/>s to statuses, so the status carries the cleared text).
/// </summary>
internal sealed class TenantViewInterceptor(TenantViews views) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var caller = CallerOf(context);
        try
        {
            var response = await continuation(request, context);
            if (caller is not null)
            {
                await views.ApplyAsync(caller, response as IMessage, context.CancellationToken);
            }
            return response;
        }
        catch (ApiException e) when (caller is not null)
        {
            throw await views.ApplyAsync(caller, e, context.CancellationToken);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var caller = CallerOf(context);
        if (caller is null)
        {
            await continuation(request, responseStream, context);
            return;
        }
        try
        {
            await continuation(request, new ViewWriter<TResponse>(responseStream, views, caller, context.CancellationToken), context);
        }
        catch (ApiException e)
        {
            throw await views.ApplyAsync(caller, e, context.CancellationToken);
        }
    }

    private static Caller? CallerOf(ServerCallContext context)
        => ApiCallers.IsApiCaller(context.GetHttpContext().User) ? ApiCallers.Of(context) : null;

    private sealed class ViewWriter<T>(IServerStreamWriter<T> inner, TenantViews views, Caller caller, CancellationToken cancellationToken) : IServerStreamWriter<T>
    {
        public WriteOptions? WriteOptions
        {
            get => inner.WriteOptions;
            set => inner.WriteOptions = value;
        }

        public async Task WriteAsync(T message)
        {
            await views.ApplyAsync(caller, message as IMessage, cancellationToken);
            await inner.WriteAsync(message);
        }
    }
}
