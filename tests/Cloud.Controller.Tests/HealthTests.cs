using System.Net;
using Cloud.Agent;
using Cloud.Agent.Hypervisor;
using Cloud.Agent.Hypervisor.Fake;
using Cloud.Controller.Data;
using Cloud.Controller.Hosting;
using Cloud.Controller.Tests.Support;
using Cloud.Testing;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cloud.Controller.Tests;

/// <summary>
/// Liveness and readiness on the controller (HTTP and grpc.health.v1) and the agents
/// (grpc.health.v1), and what makes readiness fail: PostgreSQL gone, a schema behind the code,
/// a hypervisor backend that does not answer.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class HealthTests(CloudFixture cloud)
{
    [Theory]
    [InlineData("/healthz/live")]
    [InlineData("/healthz/ready")]
    [InlineData("/healthz")]
    public async Task The_controllers_http_probes_answer_healthy_without_a_token(string path)
    {
        using var anonymous = cloud.NewHttpClient();

        using var response = await anonymous.GetAsync(path);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("")]
    [InlineData("readiness")]
    [InlineData("liveness")]
    public async Task Controller_and_agents_serve_grpc_health(string service)
    {
        foreach (var url in cloud.AgentUrls.Prepend(cloud.NodeUrl).Prepend(cloud.GrpcUrl))
        {
            // The agents and the node port take callers with a certificate only.
            using var channel = url == cloud.GrpcUrl ? cloud.NewGrpcChannel() : cloud.NewAgentChannel(url);
            var reply = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest { Service = service }, deadline: DateTime.UtcNow.AddSeconds(10));
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
        }
    }

    [Fact]
    public async Task An_unknown_health_service_is_not_found()
    {
        using var channel = cloud.NewGrpcChannel();

        var error = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest { Service = "no.such.Service" }).ResponseAsync);

        Assert.Equal(Grpc.Core.StatusCode.NotFound, error.StatusCode);
    }

    [Fact]
    public async Task The_ledger_is_not_ready_while_migrations_are_pending_or_postgresql_is_gone()
    {
        var empty = await PostgresFixture.Shared.CreateDatabaseAsync();
        var pending = await CheckLedgerAsync(empty);
        var unreachable = await CheckLedgerAsync($"Host=127.0.0.1;Port={Ports.Free(IPAddress.Loopback)};Username=nobody;Password=x;Database=none;Timeout=2");
        var current = await CheckLedgerAsync(cloud.ConnectionString);

        Assert.Equal(HealthStatus.Unhealthy, pending.Status);
        Assert.Contains("migration(s) not applied", pending.Description, StringComparison.Ordinal);
        Assert.Equal(HealthStatus.Unhealthy, unreachable.Status);
        Assert.Equal(HealthStatus.Healthy, current.Status);
    }

    [Fact]
    public async Task An_agent_whose_backend_does_not_answer_is_not_ready()
    {
        var fake = new FakeHypervisor(Microsoft.Extensions.Options.Options.Create(new FakeHypervisorOptions()), TimeProvider.System, "health-node");
        var check = new HypervisorHealthCheck(SilentHypervisor.Wrap(fake));
        var healthy = await new HypervisorHealthCheck(fake).CheckHealthAsync(new HealthCheckContext());

        var result = await check.CheckHealthAsync(new HealthCheckContext());

        Assert.Equal(HealthStatus.Healthy, healthy.Status);
        Assert.Equal(HealthStatus.Unhealthy, result.Status);
        Assert.Contains("does not answer", result.Description, StringComparison.Ordinal);
    }

    private static async Task<HealthCheckResult> CheckLedgerAsync(string connectionString)
    {
        var services = new ServiceCollection().AddLogging().AddLedgerDatabase(connectionString).BuildServiceProvider();
        await using (services)
        {
            return await ActivatorUtilities.CreateInstance<LedgerHealthCheck>(services).CheckHealthAsync(new HealthCheckContext());
        }
    }
}

/// <summary>A backend whose node facts never come: the QEMU binary gone, the host wedged.</summary>
public class SilentHypervisor : System.Reflection.DispatchProxy
{
    private IHypervisor _inner = null!;

    public static IHypervisor Wrap(IHypervisor inner)
    {
        var proxy = Create<IHypervisor, SilentHypervisor>();
        ((SilentHypervisor)(object)proxy)._inner = inner;
        return proxy;
    }

    protected override object? Invoke(System.Reflection.MethodInfo? targetMethod, object?[]? args)
        => targetMethod?.Name == nameof(IHypervisor.GetNodeInfoAsync)
            ? Task.FromException<Cloud.Contracts.Agent.V1.NodeInfo>(new HypervisorException(HypervisorError.Unavailable, "qemu-system-x86_64 cannot be run."))
            : targetMethod!.Invoke(_inner, args);
}
