using System.Text.Json;
using Cloud.ServiceDefaults;
using Grpc.Core;

namespace Cloud.Controller.Api;

/// <summary>
/// An <see cref="ApiException"/> on the gRPC wire: the same code and message as the REST problem
/// details, and its details as an ErrorInfo (reason, and the other details as metadata) that a
/// client reads with <c>RpcException.GetRpcStatus()</c>.
/// </summary>
internal sealed class ApiErrorMapper : IRpcErrorMapper
{
    public Google.Rpc.Status? Map(Exception exception, ServerCallContext context)
    {
        if (exception is not ApiException e)
        {
            return null;
        }
        var reason = e.Details.TryGetValue("reason", out var r) && r is string given ? given : ApiException.CodeName(e.Code);
        var metadata = e.Details
            .Where(kv => kv.Key is not ("reason" or "httpStatus"))
            .Select(kv => KeyValuePair.Create(kv.Key, kv.Value as string ?? JsonSerializer.Serialize(kv.Value)));
        return RpcErrorInterceptor.Status(e.Code, e.Message, reason, metadata);
    }
}
