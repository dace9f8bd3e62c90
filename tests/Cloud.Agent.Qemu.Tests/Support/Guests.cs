using Cloud.Contracts.Agent.V1;

namespace Cloud.Agent.Qemu.Tests.Support;

/// <summary>VM specs the tests use: a firmware-only guest (no OS, cheap) and the tiny Linux guest.</summary>
internal static class Guests
{
    public static VmSpec Firmware(string vmId, bool start = true, int diskGb = 1, int vcpus = 1, long memoryMb = 128, int maxVcpus = 0, long maxMemoryMb = 0) => new()
    {
        VmId = vmId,
        Name = vmId,
        Start = start,
        Shape = new VmShape { Vcpus = vcpus, MemoryMb = memoryMb, DiskGb = diskGb, MaxVcpus = maxVcpus, MaxMemoryMb = maxMemoryMb },
    };

    /// <summary>Imports the Linux guest as a kernel image of the node (once per node) and returns its id.</summary>
    public static async Task<string> ImportLinuxAsync(TestNode node, string imageId = "linux", string extraAppend = "")
    {
        if (node.Hypervisor.Images.Find(imageId) is null)
        {
            var (kernel, initrd) = await LinuxGuest.EnsureAsync();
            await node.Hypervisor.Images.ImportKernelAsync(imageId, kernel, initrd, (LinuxGuest.Append + " " + extraAppend).Trim(), CancellationToken.None);
        }
        return imageId;
    }

    public static VmSpec Linux(string vmId, string imageId, int vcpus = 1, long memoryMb = 256, int maxVcpus = 0, long maxMemoryMb = 0, int diskGb = 1) => new()
    {
        VmId = vmId,
        Name = vmId,
        Image = imageId,
        Start = true,
        Shape = new VmShape { Vcpus = vcpus, MemoryMb = memoryMb, DiskGb = diskGb, MaxVcpus = maxVcpus, MaxMemoryMb = maxMemoryMb },
    };
}
