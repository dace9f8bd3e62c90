using Cloud.Grpc.Wire;

namespace Cloud.Grpc.Tests.Wire;

public class PercentEncodingTests
{
    [Theory]
    [InlineData("", "")]
    [InlineData("plain text, 100 OK!", "plain text, 100 OK!")]
    [InlineData("50%", "50%25")]
    [InlineData("line\nbreak\ttab", "line%0Abreak%09tab")]
    [InlineData("café", "caf%C3%A9")]
    [InlineData("日本", "%E6%97%A5%E6%9C%AC")]
    [InlineData("\u007F", "%7F")]
    [InlineData("emoji 😀", "emoji %F0%9F%98%80")]
    public void Encode_EscapesPercentAndEverythingOutsidePrintableAscii(string value, string expected)
        => Assert.Equal(expected, PercentEncoding.Encode(value));

    [Theory]
    [InlineData("50%25", "50%")]
    [InlineData("caf%C3%A9", "café")]
    [InlineData("caf%c3%a9", "café")]           // lowercase hex is accepted
    [InlineData("no escapes", "no escapes")]
    public void Decode_ValidSequences(string value, string expected)
        => Assert.Equal(expected, PercentEncoding.Decode(value));

    [Theory]
    [InlineData("100%", "100%")]                 // a trailing '%'
    [InlineData("%4", "%4")]                     // a truncated escape
    [InlineData("%zz ok", "%zz ok")]             // not hex
    [InlineData("a%2", "a%2")]
    public void Decode_BrokenSequences_AreKeptAsIs(string value, string expected)
        => Assert.Equal(expected, PercentEncoding.Decode(value));

    [Fact]
    public void Decode_InvalidUtf8_DoesNotThrow()
    {
        var decoded = PercentEncoding.Decode("bad %FF byte");
        Assert.StartsWith("bad ", decoded, StringComparison.Ordinal);
        Assert.EndsWith(" byte", decoded, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Ünïcödé % and \r\n controls")]
    [InlineData("%%%%")]
    [InlineData("already %41 encoded-looking")]
    public void EncodeThenDecode_RoundTrips(string value)
    {
        var encoded = PercentEncoding.Encode(value);
        Assert.All(encoded, c => Assert.InRange(c, ' ', '~'));
        Assert.Equal(value, PercentEncoding.Decode(encoded));
    }
}
