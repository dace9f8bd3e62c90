using Cloud.Controller.Data;
using Cloud.Controller.Vms;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Tests;

/// <summary>What a node's agent is told about a VM, and the live-resize settings behind it; no I/O.</summary>
public sealed class VmSpecsTests
{
    private static VmSpecs Resolve(Dictionary<string, string?> settings)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        services.AddVmSpecs();
        using var provider = services.BuildServiceProvider();
        // Read while the provider lives: VmSpecs keeps the validated settings, not the provider.
        _ = provider.GetRequiredService<IOptions<VmOptions>>().Value;
        return provider.GetRequiredService<VmSpecs>();
    }

    private static VmEntity Vm(int vcpus, long memoryMb) => new()
    {
        Id = Guid.NewGuid(),
        ProjectId = "p",
        Name = "web-1",
        FlavorName = "custom",
        State = "PENDING",
        Vcpus = vcpus,
        MemoryMb = memoryMb,
        DiskGb = 10,
        Labels = new Dictionary<string, string> { ["tier"] = "web" },
    };

    [Fact]
    public void A_small_vm_gets_the_default_room_to_grow_live()
    {
        var spec = Resolve([]).For(Vm(2, 2048));

        Assert.Equal((2, 2048L, 10L), (spec.Shape.Vcpus, spec.Shape.MemoryMb, spec.Shape.DiskGb));
        Assert.Equal((8, 16384L), (spec.Shape.MaxVcpus, spec.Shape.MaxMemoryMb));
        Assert.Equal("web", spec.Labels["tier"]);
        Assert.True(spec.Start);
    }

    [Fact]
    public void The_bounds_follow_the_settings_and_never_fall_below_the_vms_own_size()
    {
        var specs = Resolve(new() { ["Vms:LiveResizeMaxVcpus"] = "4", ["Vms:LiveResizeMaxMemoryMb"] = "8192" });

        var small = specs.For(Vm(1, 1024));
        var large = specs.For(Vm(16, 65536));

        Assert.Equal((4, 8192L), (small.Shape.MaxVcpus, small.Shape.MaxMemoryMb));
        Assert.Equal((16, 65536L), (large.Shape.MaxVcpus, large.Shape.MaxMemoryMb));
    }

    [Theory]
    [InlineData("Vms:LiveResizeMaxVcpus", "0", "Vms:LiveResizeMaxVcpus must be between 1 and 288, not 0.")]
    [InlineData("Vms:LiveResizeMaxVcpus", "1000", "Vms:LiveResizeMaxVcpus must be between 1 and 288, not 1000.")]
    [InlineData("Vms:LiveResizeMaxMemoryMb", "64", "Vms:LiveResizeMaxMemoryMb must be between 128 and 4194304, not 64.")]
    public void A_bad_setting_is_refused_naming_it(string key, string value, string expected)
    {
        var error = Assert.Throws<OptionsValidationException>(() => Resolve(new() { [key] = value }));

        Assert.Contains(expected, error.Failures);
    }
}
