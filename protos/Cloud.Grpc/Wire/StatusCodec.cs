using System.Globalization;
using System.Net;

namespace Cloud.Grpc.Wire;

/// <summary>grpc-status parsing and the HTTP-to-gRPC status mapping of the specification.</summary>
internal static class StatusCodec
{
    /// <summary>
    /// The status for a response whose HTTP status is not 200 (http-grpc-status-mapping.md).
    /// </summary>
    public static StatusCode FromHttpStatus(HttpStatusCode status) => status switch
    {
        HttpStatusCode.BadRequest => StatusCode.Internal,
        HttpStatusCode.Unauthorized => StatusCode.Unauthenticated,
        HttpStatusCode.Forbidden => StatusCode.PermissionDenied,
        HttpStatusCode.NotFound => StatusCode.Unimplemented,
        HttpStatusCode.TooManyRequests or HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout
            => StatusCode.Unavailable,
        _ => StatusCode.Unknown,
    };

    /// <summary>
    /// Reads grpc-status and grpc-message. A status that is not a decimal number without leading
    /// zeros is UNKNOWN ("error parsing returned status"); codes this version does not know are
    /// kept as UNKNOWN too, with the peer's message.
    /// </summary>
    public static Status Parse(string grpcStatus, string? grpcMessage)
    {
        var detail = grpcMessage is null ? "" : PercentEncoding.Decode(grpcMessage);
        var valid = grpcStatus.Length > 0
                    && grpcStatus.All(char.IsAsciiDigit)
                    && (grpcStatus.Length == 1 || grpcStatus[0] != '0');
        if (!valid || !int.TryParse(grpcStatus, NumberStyles.None, CultureInfo.InvariantCulture, out var code))
        {
            return new Status(StatusCode.Unknown, $"Invalid grpc-status '{grpcStatus}' in response. {detail}".TrimEnd());
        }
        if (!Enum.IsDefined((StatusCode)code))
        {
            return new Status(StatusCode.Unknown, $"Unknown grpc-status {code} in response. {detail}".TrimEnd());
        }
        return new Status((StatusCode)code, detail);
    }

    public static string Format(StatusCode code) => ((int)code).ToString(CultureInfo.InvariantCulture);
}
