using System.Globalization;

namespace Cloud.Agent.Qemu;

/// <summary>An inclusive TCP port range written "first-last".</summary>
internal readonly record struct PortRange(int First, int Last)
{
    public static bool TryParse(string? text, out PortRange range)
    {
        range = default;
        var parts = text?.Split('-') ?? [];
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var first)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var last)
            || first < 1024 || last > 65535 || first > last)
        {
            return false;
        }
        range = new PortRange(first, last);
        return true;
    }
}
