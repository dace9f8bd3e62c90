namespace Cloud.Grpc.Wire;

/// <summary>Header names and values fixed by the gRPC over HTTP/2 specification.</summary>
internal static class GrpcProtocol
{
    public const string ContentType = "application/grpc";
    public const string TimeoutHeader = "grpc-timeout";
    public const string StatusHeader = "grpc-status";
    public const string MessageHeader = "grpc-message";
    public const string EncodingHeader = "grpc-encoding";
    public const string AcceptEncodingHeader = "grpc-accept-encoding";
    public const string IdentityEncoding = "identity";
    public const string TeHeader = "te";
    public const string TeTrailers = "trailers";
    public const string TraceParentHeader = "traceparent";

    /// <summary>Sent by our client; follows the structure PROTOCOL-HTTP2.md recommends.</summary>
    public const string UserAgent = "grpc-csharp-cloud/1.0";

    /// <summary>
    /// True for "application/grpc" and "application/grpc+proto", with or without parameters.
    /// Other subtypes (e.g. +json) name codecs this transport does not have.
    /// </summary>
    public static bool IsGrpcContentType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType) || !contentType.StartsWith(ContentType, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        var rest = contentType.AsSpan(ContentType.Length);
        var semicolon = rest.IndexOf(';');
        var subtype = (semicolon >= 0 ? rest[..semicolon] : rest).Trim();
        return subtype.IsEmpty || subtype.Equals("+proto", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>True for any "application/grpc..." content type, including codecs this transport lacks.</summary>
    public static bool LooksLikeGrpc(string? contentType)
        => contentType is not null && contentType.StartsWith(ContentType, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Headers that belong to HTTP or to the gRPC protocol itself and are therefore not
    /// surfaced to applications as metadata.
    /// </summary>
    public static bool IsReservedHeader(string name)
        => name.StartsWith(':')
           || name.StartsWith("grpc-", StringComparison.OrdinalIgnoreCase)
           || name.Equals("content-type", StringComparison.OrdinalIgnoreCase)
           || name.Equals("content-length", StringComparison.OrdinalIgnoreCase)
           || name.Equals("te", StringComparison.OrdinalIgnoreCase)
           || name.Equals("host", StringComparison.OrdinalIgnoreCase)
           || name.Equals("connection", StringComparison.OrdinalIgnoreCase)
           || name.Equals("transfer-encoding", StringComparison.OrdinalIgnoreCase);
}
