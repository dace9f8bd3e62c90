using System.Globalization;

namespace Cloud.Grpc.Wire;

/// <summary>
/// The grpc-timeout header: an ASCII integer of at most 8 digits followed by one unit
/// letter (H, M, S, m, u, n).
/// </summary>
internal static class GrpcTimeout
{
    public const int MaxValue = 99_999_999;

    // Units from finest to coarsest, in TimeSpan ticks (100 ns). Nanoseconds are handled apart
    // because a tick is larger than a nanosecond.
    private static readonly (char Unit, long Ticks)[] Units =
    [
        ('u', 10),
        ('m', TimeSpan.TicksPerMillisecond),
        ('S', TimeSpan.TicksPerSecond),
        ('M', TimeSpan.TicksPerMinute),
        ('H', TimeSpan.TicksPerHour),
    ];

    /// <summary>
    /// Encodes a positive timeout in the finest unit whose value fits in 8 digits. Values are
    /// rounded up so the server never sees a shorter timeout than the client enforces.
    /// </summary>
    public static string Encode(TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "A grpc-timeout must be positive.");
        }
        var ticks = timeout.Ticks;
        if (ticks <= MaxValue / 100)
        {
            return (ticks * 100).ToString(CultureInfo.InvariantCulture) + "n";
        }
        foreach (var (unit, unitTicks) in Units)
        {
            var value = (ticks / unitTicks) + (ticks % unitTicks == 0 ? 0 : 1);
            if (value <= MaxValue)
            {
                return value.ToString(CultureInfo.InvariantCulture) + unit;
            }
        }
        // TimeSpan.MaxValue is about 256 million hours; the header cannot say more than this.
        return MaxValue.ToString(CultureInfo.InvariantCulture) + "H";
    }

    /// <summary>Parses a grpc-timeout value; false for anything the specification does not allow.</summary>
    public static bool TryParse(ReadOnlySpan<char> value, out TimeSpan timeout)
    {
        timeout = default;
        if (value.Length is < 2 or > 9)
        {
            return false;
        }
        var digits = value[..^1];
        long number = 0;
        foreach (var c in digits)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
            number = (number * 10) + (c - '0');
        }
        long ticks;
        switch (value[^1])
        {
            case 'n':
                ticks = (number + 99) / 100;
                break;
            case 'u':
                ticks = number * 10;
                break;
            case 'm':
                ticks = number * TimeSpan.TicksPerMillisecond;
                break;
            case 'S':
                ticks = number * TimeSpan.TicksPerSecond;
                break;
            case 'M':
                ticks = number * TimeSpan.TicksPerMinute;
                break;
            case 'H':
                ticks = number * TimeSpan.TicksPerHour;
                break;
            default:
                return false;
        }
        timeout = TimeSpan.FromTicks(ticks);
        return true;
    }
}
