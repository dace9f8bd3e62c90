using System.ComponentModel.DataAnnotations;

namespace Cloud.Agent.Hypervisor.Fake;

/// <summary>The simulated node: its size and how slow its operations are. Section "Agent:Fake".</summary>
public sealed class FakeHypervisorOptions
{
    public const string SectionName = "Agent:Fake";

    /// <summary>Physical vCPUs the node reports. Default 32.</summary>
    [Range(1, 4096)]
    public int Vcpus { get; set; } = 32;

    /// <summary>Memory the node reports, in MB. Default 131072 (128 GiB).</summary>
    [Range(256, 64L * 1024 * 1024)]
    public long MemoryMb { get; set; } = 131072;

    /// <summary>Local disk the node reports, in GB. Default 2000.</summary>
    [Range(1, 1_000_000)]
    public long DiskGb { get; set; } = 2000;

    /// <summary>Simulated time to create a VM. Default 0.</summary>
    public TimeSpan CreateLatency { get; set; } = TimeSpan.Zero;

    /// <summary>Simulated time to start or stop a guest. Default 0.</summary>
    public TimeSpan PowerLatency { get; set; } = TimeSpan.Zero;

    /// <summary>Simulated CPU load of every running VM, as a fraction of its vCPUs (0..1). Default 0.1.</summary>
    [Range(0.0, 1.0)]
    public double CpuLoad { get; set; } = 0.1;

    public string AvailabilityZone { get; set; } = "zone-a";
}
