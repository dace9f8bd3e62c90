using Cloud.Grpc.Wire;

namespace Cloud.Grpc.Tests.Wire;

public class GrpcTimeoutTests
{
    [Theory]
    [InlineData(1, "100n")]                      // one tick
    [InlineData(999_999, "99999900n")]           // the largest nanosecond value that fits
    [InlineData(1_000_000, "100000u")]
    [InlineData(5 * TimeSpan.TicksPerSecond, "5000000u")]
    [InlineData(1000 * TimeSpan.TicksPerSecond, "1000000m")]
    [InlineData(200_000 * TimeSpan.TicksPerSecond, "200000S")] // 200,000,000 ms would be 9 digits
    public void Encode_PicksTheFinestUnitThatFits(long ticks, string expected)
        => Assert.Equal(expected, GrpcTimeout.Encode(TimeSpan.FromTicks(ticks)));

    [Fact]
    public void Encode_RoundsUpSoTheServerNeverGetsLessTime()
    {
        // 1.5 s + 1 tick = 1,500,000.1 us, rounded up.
        Assert.Equal("1500001u", GrpcTimeout.Encode(TimeSpan.FromTicks(15_000_001)));
        // 100,000.0001 s -> milliseconds would need 9 digits, so whole seconds, rounded up.
        Assert.Equal("100001S", GrpcTimeout.Encode(TimeSpan.FromSeconds(100_000) + TimeSpan.FromTicks(1)));
    }

    [Fact]
    public void Encode_NeverExceedsEightDigits()
    {
        foreach (var timeout in new[] { TimeSpan.FromDays(3650), TimeSpan.FromHours(99_999_999), TimeSpan.MaxValue })
        {
            var encoded = GrpcTimeout.Encode(timeout);
            Assert.InRange(encoded.Length, 2, 9);
            Assert.True(GrpcTimeout.TryParse(encoded, out var parsed));
            Assert.True(parsed >= timeout || encoded == "99999999H", encoded);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void Encode_NonPositive_Throws(long ticks)
        => Assert.Throws<ArgumentOutOfRangeException>(() => GrpcTimeout.Encode(TimeSpan.FromTicks(ticks)));

    [Theory]
    [InlineData("1H", 36_000_000_000)]
    [InlineData("2M", 1_200_000_000)]
    [InlineData("3S", 30_000_000)]
    [InlineData("4m", 40_000)]
    [InlineData("5u", 50)]
    [InlineData("100n", 1)]
    [InlineData("1n", 1)]          // rounded up to one tick, never down to zero
    [InlineData("0m", 0)]
    [InlineData("99999999H", 99_999_999 * TimeSpan.TicksPerHour)]
    public void TryParse_ValidValues(string value, long expectedTicks)
    {
        Assert.True(GrpcTimeout.TryParse(value, out var timeout));
        Assert.Equal(expectedTicks, timeout.Ticks);
    }

    [Theory]
    [InlineData("")]
    [InlineData("S")]
    [InlineData("10")]
    [InlineData("10s")]            // units are case-sensitive
    [InlineData("10x")]
    [InlineData("-1S")]
    [InlineData("+1S")]
    [InlineData(" 1S")]
    [InlineData("1.5S")]
    [InlineData("123456789S")]     // nine digits
    [InlineData("1S ")]
    [InlineData("１S")]            // non-ASCII digit
    public void TryParse_InvalidValues_ReturnFalse(string value)
        => Assert.False(GrpcTimeout.TryParse(value, out _));

    [Fact]
    public void EncodeThenParse_RoundTripsWithoutShortening()
    {
        var random = new Random(42);
        for (var i = 0; i < 1000; i++)
        {
            var timeout = TimeSpan.FromTicks(random.NextInt64(1, TimeSpan.TicksPerDay * 400));
            Assert.True(GrpcTimeout.TryParse(GrpcTimeout.Encode(timeout), out var parsed));
            Assert.True(parsed >= timeout, $"{timeout} came back as {parsed}");
            Assert.True(parsed - timeout < TimeSpan.FromHours(1), $"{timeout} came back as {parsed}");
        }
    }
}
