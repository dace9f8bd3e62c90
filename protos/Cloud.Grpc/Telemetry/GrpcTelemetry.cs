using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Cloud.Grpc;

/// <summary>
/// Names of the traces and metrics the transport emits, for OpenTelemetry's AddSource/AddMeter.
/// Spans and instruments follow the OpenTelemetry RPC semantic conventions.
/// </summary>
public static class GrpcTelemetry
{
    /// <summary>The ActivitySource of client and server call spans.</summary>
    public const string ActivitySourceName = "Cloud.Grpc";

    /// <summary>The Meter of the call-duration histograms.</summary>
    public const string MeterName = "Cloud.Grpc";

    /// <summary>Histogram of server call durations, in seconds.</summary>
    public const string ServerCallDuration = "rpc.server.call.duration";

    /// <summary>Histogram of client call durations, in seconds.</summary>
    public const string ClientCallDuration = "rpc.client.call.duration";

    internal static readonly ActivitySource Source = new(ActivitySourceName);
    private static readonly Meter Meter = new(MeterName);

    private static readonly Histogram<double> ServerDuration = Meter.CreateHistogram<double>(
        ServerCallDuration, unit: "s", description: "Duration of gRPC calls served, from request headers to status.");

    private static readonly Histogram<double> ClientDuration = Meter.CreateHistogram<double>(
        ClientCallDuration, unit: "s", description: "Duration of gRPC calls made, from start to final status.");

    internal static Activity? StartServer(string service, string method, ActivityContext remoteParent)
    {
        // ASP.NET Core's hosting activity has already taken the incoming traceparent; when it
        // exists the call span is its child, otherwise the span is parented on the header itself.
        var activity = Activity.Current is not null
            ? Source.StartActivity($"{service}/{method}", ActivityKind.Server)
            : Source.StartActivity($"{service}/{method}", ActivityKind.Server, remoteParent);
        SetCallTags(activity, service, method);
        return activity;
    }

    internal static Activity? StartClient(string service, string method, Uri address)
    {
        var activity = Source.StartActivity($"{service}/{method}", ActivityKind.Client);
        if (activity is not null)
        {
            SetCallTags(activity, service, method);
            activity.SetTag("server.address", address.Host);
            activity.SetTag("server.port", address.Port);
        }
        return activity;
    }

    internal static void RecordServer(Activity? activity, string service, string method, StatusCode code, TimeSpan duration)
    {
        // Per the RPC conventions a server marks only codes that mean it failed as errors.
        var isError = code is StatusCode.Unknown or StatusCode.DeadlineExceeded or StatusCode.Unimplemented
            or StatusCode.Internal or StatusCode.Unavailable or StatusCode.DataLoss;
        Complete(activity, code, isError);
        ServerDuration.Record(duration.TotalSeconds, Tags(service, method, code));
    }

    internal static void RecordClient(Activity? activity, string service, string method, StatusCode code, TimeSpan duration)
    {
        Complete(activity, code, code != StatusCode.OK);
        ClientDuration.Record(duration.TotalSeconds, Tags(service, method, code));
    }

    private static void SetCallTags(Activity? activity, string service, string method)
    {
        activity?.SetTag("rpc.system", "grpc");
        activity?.SetTag("rpc.service", service);
        activity?.SetTag("rpc.method", method);
    }

    private static void Complete(Activity? activity, StatusCode code, bool isError)
    {
        if (activity is null)
        {
            return;
        }
        activity.SetTag("rpc.grpc.status_code", (int)code);
        if (isError)
        {
            activity.SetStatus(ActivityStatusCode.Error, code.ToString());
        }
        activity.Stop();
    }

    private static TagList Tags(string service, string method, StatusCode code) => new()
    {
        { "rpc.system", "grpc" },
        { "rpc.service", service },
        { "rpc.method", method },
        { "rpc.grpc.status_code", (int)code },
    };
}
