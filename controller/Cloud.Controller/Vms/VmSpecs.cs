using Cloud.Controller.Data;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Vms;

/// <summary>How VMs are laid out on their nodes. Section "Vms".</summary>
public sealed class VmOptions
{
    public const string SectionName = "Vms";

    /// <summary>
    /// Every VM starts with room to grow live to this many vCPUs (or its own count, if larger):
    /// QEMU's maxcpus only reserves hotplug slots, so the headroom costs nothing until used.
    /// A resize beyond it restarts the guest. Default 8.
    /// </summary>
    public int LiveResizeMaxVcpus { get; set; } = 8;

    /// <summary>
    /// Likewise for memory, in MB: maxmem reserves guest address space for DIMMs, not host
    /// memory. Default 16 GiB.
    /// </summary>
    public long LiveResizeMaxMemoryMb { get; set; } = 16 * 1024;
}

/// <summary>Every rule names its setting.</summary>
internal sealed class VmOptionsValidator : IValidateOptions<VmOptions>
{
    /// <summary>QEMU's q35 machine takes at most this many vCPUs.</summary>
    internal const int MaxVcpus = 288;

    /// <summary>4 TiB, in MB: more guest address space than any node of this cloud holds.</summary>
    internal const long MaxMemoryMb = 4L * 1024 * 1024;

    public ValidateOptionsResult Validate(string? name, VmOptions options)
    {
        var failures = new List<string>();
        if (options.LiveResizeMaxVcpus is < 1 or > MaxVcpus)
        {
            failures.Add($"Vms:LiveResizeMaxVcpus must be between 1 and {MaxVcpus}, not {options.LiveResizeMaxVcpus}.");
        }
        if (options.LiveResizeMaxMemoryMb is < 128 or > MaxMemoryMb)
        {
            failures.Add($"Vms:LiveResizeMaxMemoryMb must be between 128 and {MaxMemoryMb}, not {options.LiveResizeMaxMemoryMb}.");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

/// <summary>The spec a node's agent gets for a VM: its size, image and labels, and its live-resize bounds.</summary>
internal sealed class VmSpecs(IOptions<VmOptions> options)
{
    public AgentV1.VmSpec For(VmEntity vm)
    {
        ArgumentNullException.ThrowIfNull(vm);
        var spec = new AgentV1.VmSpec
        {
            VmId = vm.Id.ToString("N"),
            Name = vm.Name,
            // The bounds depend on the size and the settings alone, so a VM's spec says the same
            // when it is created and when it is resized beyond them (the agent raises a bound to
            // the new size). A migration takes the running VM's own bounds from its source.
            Shape = new AgentV1.VmShape
            {
                Vcpus = vm.Vcpus,
                MemoryMb = vm.MemoryMb,
                DiskGb = vm.DiskGb,
                MaxVcpus = Math.Max(vm.Vcpus, options.Value.LiveResizeMaxVcpus),
                MaxMemoryMb = Math.Max(vm.MemoryMb, options.Value.LiveResizeMaxMemoryMb),
            },
            Image = vm.ImageId ?? "",
            UserData = vm.UserData ?? "",
            Start = true,
        };
        spec.Labels.Add(vm.Labels);
        return spec;
    }
}

internal static class VmSpecsExtensions
{
    /// <summary>The "Vms" settings, checked on start, and the <see cref="VmSpecs"/> built from them.</summary>
    public static IServiceCollection AddVmSpecs(this IServiceCollection services)
    {
        services.AddOptions<VmOptions>().BindConfiguration(VmOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<VmOptions>, VmOptionsValidator>());
        services.TryAddSingleton<VmSpecs>();
        return services;
    }
}
