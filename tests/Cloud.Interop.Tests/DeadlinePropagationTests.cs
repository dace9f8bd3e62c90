using System.Net;
using Cloud.Controller.Tests.Support;
using Cloud.Interop.Tests.Support;

namespace Cloud.Interop.Tests;

/// <summary>
/// A grpcio client's deadline, end to end: the client calls the controller's
/// Compute.GetConsoleOutput for a VM whose node's agent is the Python server, and that agent
/// reports the deadline it was called with, or that its call was cancelled.
/// </summary>
[Collection(InteropCollection.Name)]
public sealed class DeadlinePropagationTests(InteropFixture interop)
{
    /// <summary>How much later than the client's own deadline the agent may see it: grpc-timeout is encoded with limited precision, rounded up.</summary>
    internal const double HeaderRounding = 0.25;

    private string Controller => InteropFixture.Target(interop.Cloud.GrpcUrl);

    [Fact]
    public async Task The_clients_deadline_reaches_the_agent_through_the_controller()
    {
        using var tenant = await interop.Cloud.CreateTenantAsync("deadline");
        var vmId = await interop.VmOnPythonNodeAsync(tenant.Id, "py-console");

        var result = await interop.ProbeAsync("console", Controller, tenant.MemberToken, vmId.ToString(), "7");

        Assert.True(result.Str("code") == "OK", result.ToString());
        var remaining = ControllerToPythonAgentTests.TimeRemaining(result.Str("output"));
        // The client's 7 s, less what the way there took; not the controller's own 60 s per attempt.
        // The grpc-timeout header is coarse, and each hop may round it up: a few ms over can show.
        Assert.InRange(remaining, 0.001, 7.0 + HeaderRounding);
        var observed = await interop.AgentObservedAsync(e => InteropFixture.Field(e, "event") == "GetConsoleOutput" && InteropFixture.Field(e, "vm_id") == vmId.ToString("N"));
        Assert.Equal(65536, observed.GetProperty("max_bytes").GetInt32());
    }

    [Fact]
    public async Task A_rest_read_carries_the_controllers_per_attempt_deadline()
    {
        using var tenant = await interop.Cloud.CreateTenantAsync("restdl");
        var vmId = await interop.VmOnPythonNodeAsync(tenant.Id, "py-rest");

        var (status, body) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/console-output?length=4096");

        Assert.True(status == HttpStatusCode.OK, body.ToString());
        Assert.Equal(vmId.ToString(), body.Str("vmId"));
        Assert.InRange(ControllerToPythonAgentTests.TimeRemaining(body.Str("output")), 50.0, 60.0 + HeaderRounding);
    }

    [Fact]
    public async Task A_deadline_that_passes_while_the_agent_is_slow_is_deadline_exceeded_and_the_agent_sees_its_call_cancelled()
    {
        using var tenant = await interop.Cloud.CreateTenantAsync("slowdl");
        var vmId = await interop.VmOnPythonNodeAsync(tenant.Id, "py-slow");
        await interop.SetBehaviourAsync(vmId.ToString("N"), "slow");

        var result = await interop.ProbeAsync("console", Controller, tenant.MemberToken, vmId.ToString(), "2");

        Assert.True(result.Str("code") == "DEADLINE_EXCEEDED", result.ToString());
        Assert.InRange(result.GetProperty("elapsed").GetDouble(), 1.5, 10.0);
        var ended = await interop.AgentObservedAsync(e => InteropFixture.Field(e, "event") == "GetConsoleOutputEnded" && InteropFixture.Field(e, "vm_id") == vmId.ToString("N"));
        Assert.False(ended.GetProperty("active").GetBoolean());
        Assert.InRange(ended.GetProperty("waited").GetDouble(), 0.5, 10.0);
    }

    [Fact]
    public async Task A_client_that_cancels_its_call_cancels_the_agents_call_too()
    {
        using var tenant = await interop.Cloud.CreateTenantAsync("canceldl");
        var vmId = await interop.VmOnPythonNodeAsync(tenant.Id, "py-cancel");
        await interop.SetBehaviourAsync(vmId.ToString("N"), "slow");

        var result = await interop.ProbeAsync("console-cancel", Controller, tenant.MemberToken, vmId.ToString(), "1");

        Assert.True(result.GetProperty("cancelled").GetBoolean(), result.ToString());
        Assert.Equal("CANCELLED", result.Str("code"));
        var ended = await interop.AgentObservedAsync(e => InteropFixture.Field(e, "event") == "GetConsoleOutputEnded" && InteropFixture.Field(e, "vm_id") == vmId.ToString("N"));
        Assert.False(ended.GetProperty("active").GetBoolean());
        // Ended by the cancellation, long before the client's 30 s deadline could end it.
        Assert.InRange(ended.GetProperty("waited").GetDouble(), 0.2, 10.0);
    }

    [Fact]
    public async Task Another_tenant_cannot_read_the_console_and_learns_nothing_of_the_vm()
    {
        using var owner = await interop.Cloud.CreateTenantAsync("owner");
        using var other = await interop.Cloud.CreateTenantAsync("other");
        var vmId = await interop.VmOnPythonNodeAsync(owner.Id, "py-private");

        var result = await interop.ProbeAsync("console", Controller, other.MemberToken, vmId.ToString(), "5");

        Assert.Equal("NOT_FOUND", result.Str("code"));
    }

    [Fact]
    public async Task A_vm_its_agent_does_not_hold_is_failed_precondition()
    {
        using var tenant = await interop.Cloud.CreateTenantAsync("gonedl");
        var vmId = await interop.VmOnPythonNodeAsync(tenant.Id, "py-gone");
        await interop.SetBehaviourAsync(vmId.ToString("N"), "missing");

        var result = await interop.ProbeAsync("console", Controller, tenant.MemberToken, vmId.ToString(), "5");

        Assert.Equal("FAILED_PRECONDITION", result.Str("code"));
    }
}
