using System.Net;
using System.Text.RegularExpressions;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>
/// A tenant reads what its Linux guest (real QEMU under TCG) prints on its serial console, over
/// REST and gRPC; another tenant cannot; bounds are enforced.
/// </summary>
[Collection(QemuCloudCollection.Name)]
public sealed partial class QemuConsoleOutputTests(QemuCloudFixture cloud) : IDisposable
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);

    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    [Fact]
    public async Task A_tenant_reads_its_linux_guests_ticks_over_rest_and_grpc_and_another_tenant_gets_not_found()
    {
        using var tenant = await cloud.CreateTenantAsync("qconsole");
        using var other = await cloud.CreateTenantAsync("qconoth");
        await cloud.SeedAsync(tenant.Id);
        var (status, operation) = await tenant.Member.PostAsync("/v1/vms", $$"""{"name":"console-guest","flavor":"m1.tiny","image":"{{LinuxImages.Counter}}"}""");
        Assert.Equal(HttpStatusCode.Accepted, status);
        var created = await tenant.Member.WaitForOperationAsync(operation.Str("id"));
        Assert.True(created.Str("state") == "SUCCEEDED", created.ToString());
        var vmId = operation.Str("targetId");
        var compute = new Compute.ComputeClient(_channel);

        // The guest counts every half second once booted: read until it has counted to 3.
        var deadline = DateTime.UtcNow + Boot;
        string output;
        while (true)
        {
            var (readStatus, read) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/console-output");
            Assert.True(readStatus == HttpStatusCode.OK, read.ToString());
            output = read.Str("output");
            if (Ticks(output).Contains(3))
            {
                break;
            }
            Assert.True(DateTime.UtcNow < deadline, $"The guest printed no tick=3 within {Boot}; its console so far:\n{output}");
            await Task.Delay(500);
        }
        var ticks = Ticks(output);
        Assert.Equal(Enumerable.Range(ticks[0], ticks.Count), ticks);

        var overGrpc = await compute.GetConsoleOutputAsync(new GetConsoleOutputRequest { Id = vmId }, Tenancy.Bearer(tenant.MemberToken));
        Assert.Equal(vmId, overGrpc.VmId);
        Assert.True(Ticks(overGrpc.Output).Max() >= 3, overGrpc.Output);
        // The log only grows while the guest runs: gRPC's read is no shorter than REST's.
        Assert.StartsWith(output, overGrpc.Output, StringComparison.Ordinal);

        var tail = await compute.GetConsoleOutputAsync(new GetConsoleOutputRequest { Id = vmId, Length = 200 }, Tenancy.Bearer(tenant.MemberToken));
        Assert.True(tail.Start > 0 && tail.TotalBytes - tail.Start <= 200, tail.ToString());
        Assert.Matches(TickLine(), tail.Output);

        var (otherStatus, _) = await other.Member.GetJsonAsync($"/v1/vms/{vmId}/console-output");
        Assert.Equal(HttpStatusCode.NotFound, otherStatus);
        var otherGrpc = await Assert.ThrowsAsync<RpcException>(() => compute.GetConsoleOutputAsync(new GetConsoleOutputRequest { Id = vmId }, Tenancy.Bearer(other.MemberToken)).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, otherGrpc.StatusCode);

        var (badStatus, bad) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/console-output?length=2000000");
        Assert.Equal(HttpStatusCode.BadRequest, badStatus);
        Assert.Equal("INVALID_ARGUMENT", bad.Str("code"));
        var badGrpc = await Assert.ThrowsAsync<RpcException>(() => compute.GetConsoleOutputAsync(new GetConsoleOutputRequest { Id = vmId, Length = -5 }, Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badGrpc.StatusCode);

        Assert.Equal("SUCCEEDED", (await tenant.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{vmId}")).Str("state"));
        var (goneStatus, _) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/console-output");
        Assert.Equal(HttpStatusCode.NotFound, goneStatus);
    }

    private static List<int> Ticks(string output) => [.. TickLine().Matches(output).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))];

    [GeneratedRegex(@"tick=(\d+) cpus=\d+ memtotal_kb=\d+")]
    private static partial Regex TickLine();

    public void Dispose() => _channel.Dispose();
}
