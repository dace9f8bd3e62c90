using Cloud.Agent.Hypervisor;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cloud.Agent.Qemu;

/// <summary>Registration of the QEMU backend in the agent's container.</summary>
public static class QemuServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="QemuOptions"/> from "Agent:Qemu" (validated when the host starts) and
    /// registers <see cref="QemuHypervisor"/> as the node's <see cref="IHypervisor"/>.
    /// </summary>
    public static IServiceCollection AddQemuBackend(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        var nodeName = configuration["Agent:NodeName"];
        services.AddOptions<QemuOptions>()
            .Configure(o =>
            {
                if (!string.IsNullOrWhiteSpace(nodeName))
                {
                    o.NodeName = nodeName;
                }
            })
            .BindConfiguration(QemuOptions.SectionName)
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<QemuOptions>, QemuOptionsValidator>();
        services.AddSingleton(sp => new QemuHypervisor(
            sp.GetRequiredService<IOptions<QemuOptions>>().Value,
            sp.GetRequiredService<ILoggerFactory>(),
            sp.GetService<TimeProvider>() ?? TimeProvider.System));
        services.AddSingleton<IHypervisor>(sp => sp.GetRequiredService<QemuHypervisor>());
        services.AddHostedService(sp => new UnusedImageSweeper(
            sp.GetRequiredService<QemuHypervisor>(),
            sp.GetRequiredService<IOptions<QemuOptions>>().Value,
            sp.GetService<TimeProvider>() ?? TimeProvider.System,
            sp.GetRequiredService<ILogger<UnusedImageSweeper>>()));
        return services;
    }
}
