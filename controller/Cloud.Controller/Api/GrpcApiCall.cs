using Cloud.Controller.Auth;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Api;

/// <summary>
/// What every public gRPC method does around its work: authenticate the bearer token, and turn
/// an <see cref="ApiException"/> into the status and trailers that carry the same code as REST.
/// </summary>
internal static class GrpcApiCall
{
    public static async Task<T> RunAsync<T>(TokenAuthenticator authenticator, ServerCallContext context, Func<Caller, Task<T>> action)
    {
        try
        {
            var caller = await authenticator.AuthenticateApiAsync(context.RequestHeaders.GetValue("authorization"), context.CancellationToken)
                ?? throw new ApiException(StatusCode.Unauthenticated, "Send a valid API token in the authorization metadata: Bearer <token>.");
            return await action(caller);
        }
        catch (ApiException e)
        {
            throw ToRpc(e);
        }
    }

    /// <summary>
    /// The status carries the code and the message; the details travel as trailers, the same
    /// names and values as the problem details' "details" on REST.
    /// </summary>
    public static RpcException ToRpc(ApiException e)
    {
        var trailers = new Metadata { { "cloud-error-code", ApiException.CodeName(e.Code) } };
        var details = e.Details.Where(kv => kv.Key != "httpStatus").ToDictionary();
        if (details.Count > 0)
        {
            trailers.Add("cloud-error-details", System.Text.Json.JsonSerializer.Serialize(details));
        }
        return new RpcException(new Status(e.Code, e.Message), trailers);
    }
}
