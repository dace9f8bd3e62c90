using System.Globalization;

namespace Cloud.Agent.Qemu;

/// <summary>
/// The uids (each also the gid) guests run as, written "first-last". The first id is kept for
/// inspecting incoming images (qemu-img runs as it, so a hostile image never runs as a guest's
/// uid); guests get the others, one each.
/// </summary>
internal readonly record struct GuestIdRange(int First, int Last)
{
    /// <summary>Below this are the distribution's system and login accounts.</summary>
    public const int Lowest = 1000;

    /// <summary>The uid and gid qemu-img probes incoming images as.</summary>
    public int ProbeId => First;

    public int FirstGuest => First + 1;

    public bool Contains(int id) => id >= First && id <= Last;

    public static bool TryParse(string? text, out GuestIdRange range)
    {
        range = default;
        var parts = text?.Split('-') ?? [];
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var first)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var last)
            // 2^31-2 at most: (uid_t)-1 means "unchanged" to setresuid, and .NET ints are signed.
            || first < Lowest || last >= int.MaxValue || first >= last)
        {
            return false;
        }
        range = new GuestIdRange(first, last);
        return true;
    }

    /// <summary>Accounts in /etc/passwd or groups in /etc/group whose ids fall in the range: a guest must never share an id with anyone.</summary>
    public IReadOnlyList<string> Overlaps()
    {
        var found = new List<string>();
        foreach (var (file, kind) in new[] { ("/etc/passwd", "user"), ("/etc/group", "group") })
        {
            if (!File.Exists(file))
            {
                continue;
            }
            foreach (var line in File.ReadLines(file))
            {
                var fields = line.Split(':');
                if (fields.Length >= 3 && int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var id) && Contains(id))
                {
                    found.Add($"{kind} {fields[0]} ({id.ToString(CultureInfo.InvariantCulture)})");
                }
            }
        }
        return found;
    }
}
