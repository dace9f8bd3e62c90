using System.Globalization;

namespace Cloud.Agent.Qemu;

/// <summary>The host's capacity, when the options do not override it.</summary>
internal static class HostResources
{
    public static long MemoryMb()
    {
        if (OperatingSystem.IsLinux())
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                {
                    var kb = long.Parse(line["MemTotal:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                    return kb / 1024;
                }
            }
        }
        return GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024 * 1024);
    }

    public static long DiskGb(string path) => new DriveInfo(Path.GetFullPath(path)).TotalSize / (1024L * 1024 * 1024);
}
