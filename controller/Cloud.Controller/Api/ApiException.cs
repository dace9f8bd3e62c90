using Grpc.Core;

namespace Cloud.Controller.Api;

/// <summary>
/// An error for the API's caller. One shape on both wires: REST answers problem details with
/// the same code, gRPC a status with the same code and the message.
/// </summary>
internal sealed class ApiException(StatusCode code, string message, IReadOnlyDictionary<string, object?>? details = null)
    : Exception(message)
{
    public StatusCode Code { get; } = code;

    public IReadOnlyDictionary<string, object?> Details { get; } = details ?? new Dictionary<string, object?>();

    public static ApiException Invalid(string message) => new(StatusCode.InvalidArgument, message);

    public static ApiException NotFound(string what, string id) => new(StatusCode.NotFound, $"{what} '{id}' does not exist.");

    /// <summary>"INVALID_ARGUMENT" for StatusCode.InvalidArgument, as gRPC and Google APIs spell codes.</summary>
    public static string CodeName(StatusCode code) => code switch
    {
        StatusCode.OK => "OK",
        StatusCode.InvalidArgument => "INVALID_ARGUMENT",
        StatusCode.DeadlineExceeded => "DEADLINE_EXCEEDED",
        StatusCode.NotFound => "NOT_FOUND",
        StatusCode.AlreadyExists => "ALREADY_EXISTS",
        StatusCode.PermissionDenied => "PERMISSION_DENIED",
        StatusCode.ResourceExhausted => "RESOURCE_EXHAUSTED",
        StatusCode.FailedPrecondition => "FAILED_PRECONDITION",
        StatusCode.OutOfRange => "OUT_OF_RANGE",
        StatusCode.DataLoss => "DATA_LOSS",
        _ => code.ToString().ToUpperInvariant(),
    };

    /// <summary>The HTTP status for a code, as Google's API design guide maps them.</summary>
    public static int HttpStatus(StatusCode code) => code switch
    {
        StatusCode.OK => 200,
        StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.OutOfRange => 400,
        StatusCode.Unauthenticated => 401,
        StatusCode.PermissionDenied => 403,
        StatusCode.NotFound => 404,
        StatusCode.AlreadyExists or StatusCode.Aborted => 409,
        StatusCode.ResourceExhausted => 429,
        StatusCode.Cancelled => 499,
        StatusCode.Unimplemented => 501,
        StatusCode.Unavailable => 503,
        StatusCode.DeadlineExceeded => 504,
        _ => 500,
    };
}
