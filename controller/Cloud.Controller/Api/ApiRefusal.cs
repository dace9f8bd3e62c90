using System.Globalization;
using Grpc.Core;

namespace Cloud.Controller.Api;

/// <summary>
/// A refusal written before any endpoint runs (authentication, rate limits), in the caller's own
/// protocol: problem details over REST, a trailers-only gRPC status over gRPC, same code either way.
/// </summary>
internal static class ApiRefusal
{
    public static bool IsGrpc(HttpRequest request)
        => request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true;

    /// <summary>
    /// Writes the refusal. <paramref name="reason"/> becomes the problem's details.reason;
    /// <paramref name="retryAfter"/>, when set, is sent as Retry-After (REST) or retry-after
    /// metadata (gRPC), in whole seconds, at least 1.
    /// </summary>
    public static async Task WriteAsync(HttpContext http, StatusCode code, string message, string? reason = null, TimeSpan? retryAfter = null)
    {
        var response = http.Response;
        if (retryAfter is { } wait)
        {
            var seconds = Math.Max(1, (long)Math.Ceiling(wait.TotalSeconds));
            response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        }
        if (IsGrpc(http.Request))
        {
            // A trailers-only response: HTTP 200 whose headers carry the status, as every gRPC
            // client reads it (a bare 401 or 429 would reach the client as "Bad gRPC response").
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/grpc";
            response.Headers["grpc-status"] = ((int)code).ToString(CultureInfo.InvariantCulture);
            response.Headers["grpc-message"] = Uri.EscapeDataString(message);
            return;
        }
        response.StatusCode = ApiException.HttpStatus(code);
        var details = reason is null ? null : new Dictionary<string, object?> { ["reason"] = reason };
        await ApiErrorFilter.Problem(details is null ? new ApiException(code, message) : new ApiException(code, message, details)).ExecuteAsync(http);
    }
}
