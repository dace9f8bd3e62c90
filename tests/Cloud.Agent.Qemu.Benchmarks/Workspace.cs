namespace Cloud.Agent.Qemu.Benchmarks;

/// <summary>A throwaway folder under /tmp, short because QMP socket paths are limited to 107 bytes.</summary>
internal static class Workspace
{
    public static string Create()
    {
        var root = Path.Combine("/tmp", "cqb-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        return root;
    }

    public static void Delete(string root)
    {
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
