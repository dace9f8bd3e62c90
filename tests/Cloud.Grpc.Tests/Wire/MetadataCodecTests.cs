using Cloud.Grpc.Wire;

namespace Cloud.Grpc.Tests.Wire;

public class MetadataCodecTests
{
    [Theory]
    [InlineData(new byte[0], "")]
    [InlineData(new byte[] { 1 }, "AQ")]
    [InlineData(new byte[] { 1, 2 }, "AQI")]
    [InlineData(new byte[] { 1, 2, 3 }, "AQID")]
    public void EncodeBinary_EmitsNoPadding(byte[] value, string expected)
        => Assert.Equal(expected, MetadataCodec.EncodeBinary(value));

    [Theory]
    [InlineData("AQ", new byte[] { 1 })]
    [InlineData("AQ==", new byte[] { 1 })]
    [InlineData("AQI", new byte[] { 1, 2 })]
    [InlineData("AQI=", new byte[] { 1, 2 })]
    [InlineData("AQID", new byte[] { 1, 2, 3 })]
    [InlineData("", new byte[0])]
    public void TryDecodeBinary_AcceptsPaddedAndUnpadded(string value, byte[] expected)
    {
        Assert.True(MetadataCodec.TryDecodeBinary(value, out var bytes));
        Assert.Equal(expected, bytes);
    }

    [Theory]
    [InlineData("A")]          // impossible length
    [InlineData("AQ===")]      // too much padding
    [InlineData("A*ID")]       // not base64
    public void TryDecodeBinary_RejectsInvalid(string value)
        => Assert.False(MetadataCodec.TryDecodeBinary(value, out _));

    [Fact]
    public void FromHeaders_SkipsProtocolHeadersAndDecodesBinary()
    {
        var headers = new Dictionary<string, IEnumerable<string>>
        {
            ["content-type"] = ["application/grpc"],
            ["te"] = ["trailers"],
            ["grpc-timeout"] = ["1S"],
            [":path"] = ["/a/b"],
            ["x-user"] = ["alice"],
            ["X-Upper"] = ["kept, lowercased"],
            // Repeated binary values may arrive joined by commas.
            ["x-blob-bin"] = ["AQI, AwQ="],
            ["x-broken-bin"] = ["%%%"],
            ["x-nonascii"] = ["é"],
        };

        var metadata = MetadataCodec.FromHeaders(headers);

        Assert.Equal(["x-user", "x-upper", "x-blob-bin", "x-blob-bin"], metadata.Select(e => e.Key));
        Assert.Equal("alice", metadata.GetValue("x-user"));
        Assert.Equal("kept, lowercased", metadata.GetValue("x-upper"));
        Assert.Equal([[1, 2], [3, 4]], metadata.GetAll("x-blob-bin").Select(e => e.ValueBytes));
    }

    [Fact]
    public void EncodeValue_BinaryIsBase64AndAsciiIsVerbatim()
    {
        var metadata = new Metadata().Add("x-a", "text value").Add("x-b-bin", [0xFF, 0x00]);
        Assert.Equal(["text value", "/wA"], metadata.Select(MetadataCodec.EncodeValue));
    }
}
