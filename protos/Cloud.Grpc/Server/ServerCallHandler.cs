using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using Cloud.Grpc.Wire;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cloud.Grpc.Server;

/// <summary>What every method endpoint shares: options, clock, logger.</summary>
internal sealed record ServerContext(GrpcServerOptions Options, TimeProvider TimeProvider, ILogger Logger);

/// <summary>
/// Runs one call from request headers to status: validates the request, runs the handler,
/// races it against the deadline and maps every outcome to a gRPC status.
/// </summary>
internal static class ServerCallHandler
{
    public const string GenericErrorDetail = "Exception was thrown by handler.";

    public static async Task HandleAsync(HttpContext http, string serviceName, string methodName, ServerContext server, Func<ServerCall, Task> body)
    {
        var fullName = $"/{serviceName}/{methodName}";
        if (!GrpcProtocol.IsGrpcContentType(http.Request.ContentType))
        {
            // PROTOCOL-HTTP2.md: 415 keeps non-gRPC clients from reading a gRPC error as success.
            Log.UnsupportedContentType(server.Logger, http.Request.Path, http.Request.ContentType);
            http.Response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
            return;
        }
        if (!HttpProtocol.IsHttp2(http.Request.Protocol))
        {
            // Trailers, and so the status, need HTTP/2.
            Log.UnsupportedProtocol(server.Logger, http.Request.Path, http.Request.Protocol);
            http.Response.StatusCode = StatusCodes.Status426UpgradeRequired;
            http.Response.Headers.Connection = "Upgrade";
            http.Response.Headers.Upgrade = "h2c";
            http.Response.Headers[GrpcProtocol.StatusHeader] = StatusCodec.Format(StatusCode.Internal);
            http.Response.Headers[GrpcProtocol.MessageHeader] = PercentEncoding.Encode($"gRPC requires HTTP/2; the request came over {http.Request.Protocol}.");
            return;
        }

        var started = server.TimeProvider.GetTimestamp();
        using var activity = GrpcTelemetry.StartServer(serviceName, methodName, RemoteParent(http));
        ServerCall.PrepareResponse(http);
        using var call = ServerCall.Create(http, fullName, server.Options, server.Logger, server.TimeProvider, out var headerError);
        if (headerError is { } error)
        {
            await call.CompleteAsync(error, null).ConfigureAwait(false);
        }
        else
        {
            var run = RunAsync(call, server, body);
            if (await Task.WhenAny(run, call.DeadlineReached).ConfigureAwait(false) != run)
            {
                // The handler may ignore its token: the client is told at the deadline anyway, and
                // the handler's later writes fail.
                Log.DeadlineExceeded(server.Logger, fullName);
                await call.CompleteAsync(new Status(StatusCode.DeadlineExceeded, "Deadline exceeded."), null).ConfigureAwait(false);
            }
            var (status, trailers) = await run.ConfigureAwait(false);
            await call.CompleteAsync(status, trailers).ConfigureAwait(false);
        }

        var final = call.FinalStatus ?? Status.DefaultSuccess;
        if (final.StatusCode != StatusCode.OK)
        {
            Log.CallFailed(server.Logger, fullName, final.StatusCode, final.Detail);
        }
        GrpcTelemetry.RecordServer(activity, serviceName, methodName, final.StatusCode, server.TimeProvider.GetElapsedTime(started));
    }

    /// <summary>Runs the handler and turns its outcome into a status; never throws.</summary>
    private static async Task<(Status Status, Metadata? Trailers)> RunAsync(ServerCall call, ServerContext server, Func<ServerCall, Task> body)
    {
        try
        {
            await body(call).ConfigureAwait(false);
            return (call.Status, null);
        }
        catch (RpcException ex) when (!call.DeadlinePassed && !call.ClientGone)
        {
            return (ex.Status, ex.Trailers);
        }
        catch (Exception) when (call.DeadlinePassed)
        {
            return (new Status(StatusCode.DeadlineExceeded, "Deadline exceeded."), null);
        }
        catch (Exception) when (call.ClientGone)
        {
            return (new Status(StatusCode.Cancelled, "The client cancelled the call."), null);
        }
        catch (Exception ex)
        {
            Log.HandlerFailed(server.Logger, call.Method, ex);
            var detail = server.Options.EnableDetailedErrors
                ? $"{GenericErrorDetail} {ex.GetType().Name}: {ex.Message}"
                : GenericErrorDetail;
            return (new Status(StatusCode.Unknown, detail), null);
        }
    }

    /// <summary>The handler's service: from DI when registered, else built per call and disposed after.</summary>
    public static async Task InvokeWithServiceAsync<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TService>(HttpContext http, Func<TService, Task> invoke)
        where TService : class
    {
        var service = http.RequestServices.GetService<TService>();
        if (service is not null)
        {
            await invoke(service).ConfigureAwait(false);
            return;
        }
        service = ActivatorUtilities.CreateInstance<TService>(http.RequestServices);
        try
        {
            await invoke(service).ConfigureAwait(false);
        }
        finally
        {
            if (service is IAsyncDisposable asyncDisposable)
            {
                await asyncDisposable.DisposeAsync().ConfigureAwait(false);
            }
            else if (service is IDisposable disposable)
            {
                disposable.Dispose();
            }
        }
    }

    /// <summary>The incoming traceparent, for when no hosting activity has taken it already.</summary>
    private static ActivityContext RemoteParent(HttpContext http)
    {
        var traceParent = http.Request.Headers[GrpcProtocol.TraceParentHeader].FirstOrDefault();
        var traceState = http.Request.Headers["tracestate"].FirstOrDefault();
        return traceParent is not null && ActivityContext.TryParse(traceParent, traceState, isRemote: true, out var context)
            ? context
            : default;
    }

    /// <summary>Answers a request for a method nobody mapped: trailers-only UNIMPLEMENTED.</summary>
    public static Task UnimplementedAsync(HttpContext http, ILogger logger)
    {
        Log.UnknownMethod(logger, http.Request.Path);
        ServerCall.PrepareResponse(http);
        http.Response.Headers[GrpcProtocol.StatusHeader] = StatusCodec.Format(StatusCode.Unimplemented);
        http.Response.Headers[GrpcProtocol.MessageHeader] = PercentEncoding.Encode($"Method not found: {http.Request.Path}");
        return Task.CompletedTask;
    }
}
