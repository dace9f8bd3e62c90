using System.Diagnostics;
using Cloud.Grpc.Tests.Echo;
using Google.Protobuf;

namespace Cloud.Grpc.Tests.Support;

/// <summary>Descriptors of the test service echo.v1.Echo.</summary>
internal static class EchoMethods
{
    public const string Service = "echo.v1.Echo";

    public static readonly Method<EchoRequest, EchoResponse> Unary = Make(MethodType.Unary, "Unary");
    public static readonly Method<EchoRequest, EchoResponse> Stream = Make(MethodType.ServerStreaming, "Stream");
    public static readonly Method<EchoRequest, EchoResponse> Wait = Make(MethodType.Unary, "Wait");
    public static readonly Method<EchoRequest, EchoResponse> Fail = Make(MethodType.Unary, "Fail");

    /// <summary>A method no server implements.</summary>
    public static readonly Method<EchoRequest, EchoResponse> Missing = Make(MethodType.Unary, "Missing");

    /// <summary>A method of a service no server has.</summary>
    public static readonly Method<EchoRequest, EchoResponse> MissingService =
        new(MethodType.Unary, "nowhere.v1.Ghost", "Call", EchoRequest.Parser, EchoResponse.Parser);

    private static Method<EchoRequest, EchoResponse> Make(MethodType type, string name)
        => new(type, Service, name, EchoRequest.Parser, EchoResponse.Parser);
}

/// <summary>
/// The C# implementation of echo.v1.Echo used by the in-process and interop tests. What each
/// handler observes is reported to the <see cref="CallProbe"/> under the request's message.
/// </summary>
internal sealed class EchoService(CallProbe probe)
{
    /// <summary>Fail with this code throws a plain exception instead of an RpcException.</summary>
    public const int ThrowPlainException = -1;
    public const string SecretMessage = "connection string: secret-password";

    public static void Bind(GrpcServiceBinder<EchoService> binder)
    {
        binder.AddUnary(EchoMethods.Unary, (s, r, c) => s.UnaryAsync(r, c));
        binder.AddServerStreaming(EchoMethods.Stream, (s, r, w, c) => s.StreamAsync(r, w, c));
        binder.AddUnary(EchoMethods.Wait, (s, r, c) => s.WaitAsync(r, c));
        binder.AddUnary(EchoMethods.Fail, (_, r, _) => FailAsync(r));
    }

    private async Task<EchoResponse> UnaryAsync(EchoRequest request, ServerCallContext context)
    {
        await EchoMetadataAsync(context);
        probe.Report(request.Message, Observe(context, "ok"));
        var payload = request.ResponseSize > 0 ? ByteString.CopyFrom(new byte[request.ResponseSize]) : request.Payload;
        return new EchoResponse { Message = request.Message, Payload = payload };
    }

    private async Task StreamAsync(EchoRequest request, IServerStreamWriter<EchoResponse> writer, ServerCallContext context)
    {
        await EchoMetadataAsync(context);
        probe.Started(request.Message);
        try
        {
            for (var i = 0; request.Count == 0 || i < request.Count; i++)
            {
                if (request.DelayMs > 0)
                {
                    await Task.Delay(request.DelayMs, context.CancellationToken);
                }
                await writer.WriteAsync(new EchoResponse { Message = request.Message, Index = i }, context.CancellationToken);
            }
            probe.Report(request.Message, Observe(context, "ok"));
        }
        catch (OperationCanceledException)
        {
            probe.Report(request.Message, Observe(context, "cancelled"));
            throw;
        }
    }

    private async Task<EchoResponse> WaitAsync(EchoRequest request, ServerCallContext context)
    {
        probe.Started(request.Message);
        if (probe.TryGetGate(request.Message) is { } gate)
        {
            // Deliberately deaf to cancellation: the server must still answer at the deadline.
            await gate;
            try
            {
                await context.WriteResponseHeadersAsync(new Metadata().Add("late", "1"));
                probe.Report(request.Message, Observe(context, "wrote-headers-after-gate"));
            }
            catch (Exception ex) when (ex is InvalidOperationException or OperationCanceledException)
            {
                probe.Report(request.Message, Observe(context, "write-refused"));
                throw;
            }
            return new EchoResponse { Message = request.Message };
        }
        try
        {
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
        }
        catch (OperationCanceledException)
        {
            probe.Report(request.Message, Observe(context, "cancelled"));
            throw;
        }
        return new EchoResponse();
    }

    private static Task<EchoResponse> FailAsync(EchoRequest request)
    {
        if (request.FailCode == ThrowPlainException)
        {
            throw new InvalidOperationException(SecretMessage);
        }
        var trailers = new Metadata()
            .Add("fail-detail", "detail")
            .Add("fail-bin", [1, 2, 3]);
        throw new RpcException(new Status((StatusCode)request.FailCode, request.FailMessage), trailers);
    }

    /// <summary>Request metadata "x-..." comes back as response header "echo-x-..." and trailer "trailer-x-...".</summary>
    private static async Task EchoMetadataAsync(ServerCallContext context)
    {
        var headers = new Metadata();
        foreach (var entry in context.RequestHeaders.Where(e => e.Key.StartsWith("x-", StringComparison.Ordinal)))
        {
            if (entry.IsBinary)
            {
                headers.Add("echo-" + entry.Key, entry.ValueBytes);
                context.ResponseTrailers.Add("trailer-" + entry.Key, entry.ValueBytes);
            }
            else
            {
                headers.Add("echo-" + entry.Key, entry.Value);
                context.ResponseTrailers.Add("trailer-" + entry.Key, entry.Value);
            }
        }
        if (headers.Count > 0)
        {
            await context.WriteResponseHeadersAsync(headers);
        }
    }

    private static ServerObservation Observe(ServerCallContext context, string outcome) => new(
        outcome,
        context.CancellationToken.IsCancellationRequested,
        context.Deadline,
        DateTime.UtcNow,
        Activity.Current?.TraceId.ToString(),
        Activity.Current?.Source.Name,
        context.RequestHeaders.GetValue("user-agent"),
        context.Peer);
}

/// <summary>What a handler saw when it finished.</summary>
internal sealed record ServerObservation(
    string Outcome,
    bool TokenCancelled,
    DateTime Deadline,
    DateTime ObservedAt,
    string? TraceId,
    string? ActivitySource,
    string? UserAgent,
    string Peer);
