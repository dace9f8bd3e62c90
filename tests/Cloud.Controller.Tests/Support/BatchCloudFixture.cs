using System.Net;
using System.Reflection;
using System.Runtime.ExceptionServices;
using Cloud.Agent.Hypervisor;
using Cloud.Agent.Hypervisor.Fake;
using Cloud.Contracts.Agent.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Tests.Support;

/// <summary>
/// Two fake nodes of 4,096 MB each, small enough that a batch of large VMs fills them, whose
/// agents refuse to create a VM named <see cref="RefusingHypervisor.RefusedName"/>. Its own
/// collection, so that no other test's VMs take the room.
/// </summary>
public sealed class BatchCloudFixture : CloudFixture
{
    public const long NodeMemoryMb = 4096;

    protected override Dictionary<string, string?> AgentBackendSettings(int n, IPAddress address)
    {
        var settings = base.AgentBackendSettings(n, address);
        settings["Agent:Fake:MemoryMb"] = NodeMemoryMb.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return settings;
    }

    protected override void ConfigureAgent(WebApplicationBuilder agent, int n)
        => agent.Services.AddSingleton(sp => RefusingHypervisor.Wrap(new FakeHypervisor(
            sp.GetRequiredService<IOptions<FakeHypervisorOptions>>(), sp.GetRequiredService<TimeProvider>(), $"test-node-{n}")));
}

[CollectionDefinition(Name)]
public sealed class BatchCloudCollection : ICollectionFixture<BatchCloudFixture>
{
    public const string Name = "batch-cloud";
}

/// <summary>The fake backend, except that it refuses to create one VM name, as a node out of some resource would.</summary>
public class RefusingHypervisor : DispatchProxy
{
    public const string RefusedName = "refuse-2";

    private IHypervisor _inner = null!;

    public static IHypervisor Wrap(IHypervisor inner)
    {
        var proxy = Create<IHypervisor, RefusingHypervisor>();
        ((RefusingHypervisor)(object)proxy)._inner = inner;
        return proxy;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(targetMethod);
        if (targetMethod.Name == nameof(IHypervisor.CreateVmAsync) && args?[0] is VmSpec { Name: RefusedName })
        {
            return Task.FromException<Vm>(new HypervisorException(HypervisorError.FailedPrecondition, "No room left for the guest's disk."));
        }
        try
        {
            return targetMethod.Invoke(_inner, args);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            ExceptionDispatchInfo.Throw(e.InnerException);
            throw;
        }
    }
}
