using Grpc.Core;
using Google.Protobuf;

namespace Cloud.Controller.Api;

/// <summary>
/// REST bodies are the compute API's messages in the proto3 JSON mapping, so the two wires
/// cannot drift apart. Parsing is strict: unknown fields are an error, not silently dropped.
/// </summary>
internal static class ProtoJson
{
    /// <summary>A request body larger than this is refused before it is parsed.</summary>
    public const int MaxBodyBytes = 1024 * 1024;

    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithRecursionLimit(32));
    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    public static async Task<T> ReadAsync<T>(HttpRequest request, CancellationToken cancellationToken) where T : IMessage<T>, new()
    {
        if (request.ContentType is null || !request.ContentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            throw new ApiException(StatusCode.InvalidArgument, "The body must be JSON (Content-Type: application/json).", new Dictionary<string, object?> { ["httpStatus"] = 415 });
        }
        if (request.ContentLength > MaxBodyBytes)
        {
            throw TooLarge();
        }
        var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > MaxBodyBytes)
            {
                throw TooLarge();
            }
            buffer.Write(chunk, 0, read);
        }
        string text;
        try
        {
            text = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw ApiException.Invalid("The body is not valid UTF-8.");
        }
        try
        {
            return Parser.Parse<T>(text);
        }
        catch (Exception e) when (e is InvalidJsonException or InvalidProtocolBufferException or FormatException)
        {
            throw ApiException.Invalid($"Malformed JSON body: {e.Message}");
        }
    }

    /// <summary>The message as JSON, once the caller's tenant view was applied (<see cref="Privacy.TenantViews"/>).</summary>
    public static IResult Result(IMessage message, int statusCode = StatusCodes.Status200OK, string? location = null)
        => new MessageResult(message, statusCode, location);

    private static ApiException TooLarge()
        => new(StatusCode.InvalidArgument, $"The body is larger than {MaxBodyBytes} bytes.", new Dictionary<string, object?> { ["httpStatus"] = 413 });

    private sealed class MessageResult(IMessage message, int statusCode, string? location) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            if (Privacy.PrivacyExtensions.TenantViewOf(httpContext) is ({ } caller, { } views))
            {
                await views.ApplyAsync(caller, message, httpContext.RequestAborted);
            }
            httpContext.Response.StatusCode = statusCode;
            httpContext.Response.ContentType = "application/json; charset=utf-8";
            if (location is not null)
            {
                httpContext.Response.Headers.Location = location;
            }
            await httpContext.Response.WriteAsync(Formatter.Format(message), httpContext.RequestAborted);
        }
    }
}
