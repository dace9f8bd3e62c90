using Cloud.Agent.Qemu.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace Cloud.Controller.Tests.Support;

/// <summary>The tests' Linux guest (it counts "tick=N ..." on its serial console) as an image tenants can create VMs from.</summary>
internal static class LinuxImages
{
    public const string Counter = "linux-counter";

    /// <summary>
    /// Puts the guest's kernel and initramfs in both QEMU nodes' stores by hand (as an operator
    /// seeds one; the controller holds no copy to send), and the catalog's public entry for it,
    /// owned by <paramref name="tenantId"/> the first time.
    /// </summary>
    public static async Task SeedAsync(this QemuCloudFixture cloud, string tenantId)
    {
        var (kernel, initrd) = await LinuxGuest.EnsureAsync();
        for (var n = 1; n <= 2; n++)
        {
            var store = cloud.AgentServices(n).GetRequiredService<Cloud.Agent.Qemu.QemuHypervisor>().Images;
            if (store.Find(Counter) is null)
            {
                await store.ImportKernelAsync(Counter, kernel, initrd, LinuxGuest.Append, CancellationToken.None);
            }
        }
        await cloud.QueryAsync("""
            INSERT INTO images (id, name, format, sha256, size_bytes, created_at, project_id, visibility, state, stored)
            VALUES (@id, @id, 'raw', '', 1, now(), @t, 'public', 'ACTIVE', false)
            ON CONFLICT (id) DO NOTHING
            """, ("id", Counter), ("t", tenantId));
    }
}
