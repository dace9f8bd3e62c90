using System.Globalization;

namespace Cloud.Agent.Qemu;

/// <summary>
/// An inclusive TCP port range written "first-last", or "ephemeral": any free port the operating
/// system picks (for hosts without a firewall to open, and for tests that run side by side).
/// </summary>
internal readonly record struct PortRange(int First, int Last)
{
    public const string EphemeralText = "ephemeral";

    /// <summary>The range of "ephemeral": ports are whatever the OS hands out for port 0.</summary>
    public static PortRange Ephemeral { get; } = new(0, 0);

    public bool IsEphemeral => First == 0;

    public static bool TryParse(string? text, out PortRange range)
    {
        range = default;
        if (string.Equals(text?.Trim(), EphemeralText, StringComparison.OrdinalIgnoreCase))
        {
            range = Ephemeral;
            return true;
        }
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
