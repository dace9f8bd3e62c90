using Cloud.Grpc.Tests.Echo;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Cloud.Grpc.Tests.Support;

/// <summary>
/// Broken or unusual servers, one per path "/quirks.v1.Quirks/{name}", for the client's
/// handling of responses a correct gRPC server never sends.
/// </summary>
internal static class QuirkyServer
{
    public static Method<EchoRequest, EchoResponse> Unary(string name)
        => new(MethodType.Unary, "quirks.v1.Quirks", name, EchoRequest.Parser, EchoResponse.Parser);

    public static Method<EchoRequest, EchoResponse> Streaming(string name)
        => new(MethodType.ServerStreaming, "quirks.v1.Quirks", name, EchoRequest.Parser, EchoResponse.Parser);

    public static async Task RespondAsync(HttpContext http, string name)
    {
        // Drain the request so that what follows is the only variable.
        await http.Request.Body.CopyToAsync(Stream.Null);
        var response = http.Response;
        switch (name)
        {
            case "TrailersOnlyOk":
                response.ContentType = "application/grpc";
                response.Headers["grpc-status"] = "0";
                break;
            case "Html":
                response.ContentType = "text/html";
                await response.WriteAsync("<html>proxy error</html>");
                break;
            case "Http503":
                response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                break;
            case "Http401":
                response.StatusCode = StatusCodes.Status401Unauthorized;
                break;
            case "NoStatus":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(Frame(new EchoResponse { Message = "orphan" }));
                break;
            case "TwoMessages":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(Frame(new EchoResponse { Message = "one" }));
                await response.Body.WriteAsync(Frame(new EchoResponse { Message = "two" }));
                response.AppendTrailer("grpc-status", "0");
                break;
            case "BadStatus":
                response.ContentType = "application/grpc";
                response.Headers["grpc-status"] = "oops";
                response.Headers["grpc-message"] = "odd%20server";
                break;
            case "TruncatedMessage":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(new byte[] { 0, 0, 0, 0, 50, 1, 2 });
                response.AppendTrailer("grpc-status", "0");
                break;
            case "RefusedStream":
                http.Features.GetRequiredFeature<IHttpResetFeature>().Reset(0x7);
                break;
            case "ResetAfterMessage":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(Frame(new EchoResponse { Message = "one" }));
                await response.Body.FlushAsync();
                http.Features.GetRequiredFeature<IHttpResetFeature>().Reset(0x2);
                break;
            default:
                response.StatusCode = StatusCodes.Status404NotFound;
                break;
        }
    }

    private static byte[] Frame(IMessage message)
    {
        var body = message.ToByteArray();
        return [0, 0, 0, (byte)(body.Length >> 8), (byte)body.Length, .. body];
    }
}
