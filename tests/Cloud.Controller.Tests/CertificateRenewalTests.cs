using System.Net;
using Cloud.Agent.Identity;
using Cloud.Controller.Tests.Support;
using Cloud.Controller.Trust;
using Microsoft.Extensions.DependencyInjection;

namespace Cloud.Controller.Tests;

/// <summary>A cloud whose certificates live one minute, so that renewal happens within a test.</summary>
public sealed class ShortLivedCertificatesFixture : CloudFixture
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(1);

    protected override Dictionary<string, string?> ControllerSettings() => new() { ["Trust:CertificateLifetime"] = "00:01:00" };
}

/// <summary>Certificates are renewed before they expire, on both sides, while VMs run and calls go on.</summary>
public sealed class CertificateRenewalTests(ShortLivedCertificatesFixture cloud) : IClassFixture<ShortLivedCertificatesFixture>
{
    [Fact]
    public async Task Certificates_are_renewed_before_they_expire_with_no_failed_call()
    {
        var agent = cloud.AgentServices(1).GetRequiredService<NodeIdentity>();
        var controller = cloud.ControllerServices.GetRequiredService<ControllerCertificates>();
        var firstAgent = agent.Certificate!;
        var firstController = controller.Own;
        var vmId = await cloud.Http.CreateRunningVmAsync("renewing", "m1.tiny");
        var calls = 0;

        // Until the first certificates have expired, keep calling through every path: the API,
        // the controller to the agent (console output), and the agents' heartbeats.
        while (DateTime.UtcNow < firstAgent.NotAfter.ToUniversalTime().AddSeconds(5))
        {
            var (status, body) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}/console-output");
            Assert.True(status == HttpStatusCode.OK, body.ToString());
            calls++;
            await Task.Delay(1000);
        }

        var renewedAgent = agent.Certificate!;
        Assert.True(firstAgent.SerialNumber != renewedAgent.SerialNumber,
            $"Not renewed: {cloud.AgentServices(1).GetRequiredService<CertificateRenewal>().Problem}; valid {firstAgent.NotBefore:O}..{firstAgent.NotAfter:O}");
        Assert.True(renewedAgent.NotAfter > firstAgent.NotAfter);
        Assert.NotEqual(firstController.SerialNumber, controller.Own.SerialNumber);
        using var onDisk = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(
            File.ReadAllText(Path.Combine(cloud.AgentTlsDirectories[1], Contracts.Trust.CloudIdentity.NodeCertificateFile)));
        Assert.Equal(renewedAgent.SerialNumber, onDisk.SerialNumber);
        Assert.True(calls >= 30, $"{calls} calls");
        // Both nodes kept heartbeating with their renewed certificates: still UP, heard from just now.
        Assert.Equal(2, await cloud.ScalarAsync("SELECT count(*) FROM nodes WHERE state = 'UP' AND last_heartbeat_at > now() - interval '5 seconds'"));
        Assert.True(await cloud.ScalarAsync("SELECT count(*) FROM node_certificates WHERE kind = 'node'") >= 4);
        using var deleted = await cloud.Http.DeleteAsync($"/v1/vms/{vmId}");
    }
}
