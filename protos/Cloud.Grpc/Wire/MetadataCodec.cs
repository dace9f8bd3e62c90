using System.Buffers.Text;
using System.Diagnostics.CodeAnalysis;

namespace Cloud.Grpc.Wire;

/// <summary>Metadata to and from HTTP/2 header fields.</summary>
internal static class MetadataCodec
{
    /// <summary>Base64 without padding, as the specification asks senders to emit.</summary>
    public static string EncodeBinary(ReadOnlySpan<byte> value) => Convert.ToBase64String(value).TrimEnd('=');

    /// <summary>Base64 with or without padding; both are valid on the wire.</summary>
    public static bool TryDecodeBinary(string value, [NotNullWhen(true)] out byte[]? bytes)
    {
        bytes = null;
        var trimmed = value.Trim();
        var unpadded = trimmed.TrimEnd('=');
        if (trimmed.Length - unpadded.Length > 2 || unpadded.Length % 4 == 1)
        {
            return false;
        }
        var padded = unpadded.Length % 4 == 0 ? unpadded : unpadded + new string('=', 4 - (unpadded.Length % 4));
        if (!Base64.IsValid(padded))
        {
            return false;
        }
        bytes = Convert.FromBase64String(padded);
        return true;
    }

    /// <summary>The header value of one entry.</summary>
    public static string EncodeValue(Metadata.Entry entry) => entry.IsBinary ? EncodeBinary(entry.ValueBytes) : entry.Value;

    /// <summary>
    /// Builds metadata from received headers. Protocol headers are left out; entries that are
    /// not valid metadata (bad names, non-ASCII values, broken base64) are dropped rather than
    /// failing the call, as the specification allows.
    /// </summary>
    public static Metadata FromHeaders(IEnumerable<KeyValuePair<string, IEnumerable<string>>> headers)
    {
        var metadata = new Metadata();
        foreach (var (name, values) in headers)
        {
            if (GrpcProtocol.IsReservedHeader(name))
            {
                continue;
            }
            foreach (var value in values)
            {
                TryAdd(metadata, name, value);
            }
        }
        return metadata;
    }

    private static void TryAdd(Metadata metadata, string name, string value)
    {
        try
        {
            if (Metadata.Entry.IsBinaryKey(name.ToLowerInvariant()))
            {
                // Repeated binary headers may arrive joined with commas; each part is its own value.
                foreach (var part in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                {
                    if (TryDecodeBinary(part, out var bytes))
                    {
                        metadata.Add(name, bytes);
                    }
                }
            }
            else
            {
                metadata.Add(name, value.Trim());
            }
        }
        catch (ArgumentException)
        {
            // Not representable as metadata: dropped (PROTOCOL-HTTP2.md allows throwing it away).
        }
    }
}
