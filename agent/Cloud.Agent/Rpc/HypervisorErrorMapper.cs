using Cloud.Agent.Hypervisor;
using Cloud.ServiceDefaults;
using Grpc.Core;

namespace Cloud.Agent.Rpc;

/// <summary>
/// What a backend failure means on the wire: its code, and a message that names the agent method
/// it came from ("StartVm: ..."), with the backend's error as the ErrorInfo reason.
/// </summary>
internal sealed class HypervisorErrorMapper : IRpcErrorMapper
{
    public Google.Rpc.Status? Map(Exception exception, ServerCallContext context)
    {
        if (exception is not HypervisorException e)
        {
            return null;
        }
        var method = context.Method[(context.Method.LastIndexOf('/') + 1)..];
        return RpcErrorInterceptor.Status(ToStatusCode(e.Error), $"{method}: {e.Message}", Reason(e.Error));
    }

    internal static StatusCode ToStatusCode(HypervisorError error) => error switch
    {
        HypervisorError.InvalidArgument => StatusCode.InvalidArgument,
        HypervisorError.NotFound => StatusCode.NotFound,
        HypervisorError.AlreadyExists => StatusCode.AlreadyExists,
        HypervisorError.FailedPrecondition => StatusCode.FailedPrecondition,
        HypervisorError.ResourceExhausted => StatusCode.ResourceExhausted,
        HypervisorError.Unavailable => StatusCode.Unavailable,
        _ => StatusCode.Internal,
    };

    /// <summary>"FAILED_PRECONDITION" for HypervisorError.FailedPrecondition: the reason a client can switch on.</summary>
    private static string Reason(HypervisorError error)
        => string.Concat(error.ToString().Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : c.ToString())).ToUpperInvariant();
}
