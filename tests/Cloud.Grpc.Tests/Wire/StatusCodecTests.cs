using System.Net;
using Cloud.Grpc.Wire;

namespace Cloud.Grpc.Tests.Wire;

public class StatusCodecTests
{
    [Theory]
    [InlineData(HttpStatusCode.BadRequest, StatusCode.Internal)]
    [InlineData(HttpStatusCode.Unauthorized, StatusCode.Unauthenticated)]
    [InlineData(HttpStatusCode.Forbidden, StatusCode.PermissionDenied)]
    [InlineData(HttpStatusCode.NotFound, StatusCode.Unimplemented)]
    [InlineData(HttpStatusCode.TooManyRequests, StatusCode.Unavailable)]
    [InlineData(HttpStatusCode.BadGateway, StatusCode.Unavailable)]
    [InlineData(HttpStatusCode.ServiceUnavailable, StatusCode.Unavailable)]
    [InlineData(HttpStatusCode.GatewayTimeout, StatusCode.Unavailable)]
    [InlineData(HttpStatusCode.InternalServerError, StatusCode.Unknown)]
    [InlineData(HttpStatusCode.UnsupportedMediaType, StatusCode.Unknown)]
    public void FromHttpStatus_FollowsTheSpecificationTable(HttpStatusCode http, StatusCode expected)
        => Assert.Equal(expected, StatusCodec.FromHttpStatus(http));

    [Fact]
    public void Parse_DecodesMessage()
    {
        var status = StatusCodec.Parse("5", "not%20found %C3%A9");
        Assert.Equal(StatusCode.NotFound, status.StatusCode);
        Assert.Equal("not found é", status.Detail);
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("05")]
    [InlineData("-1")]
    [InlineData("99999999999")]
    public void Parse_Malformed_IsUnknown(string value)
        => Assert.Equal(StatusCode.Unknown, StatusCodec.Parse(value, null).StatusCode);

    [Fact]
    public void Parse_CodeOutsideTheKnownRange_IsUnknownWithThePeersMessage()
    {
        var status = StatusCodec.Parse("42", "odd");
        Assert.Equal(StatusCode.Unknown, status.StatusCode);
        Assert.Contains("odd", status.Detail, StringComparison.Ordinal);
    }
}
