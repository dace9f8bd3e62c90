using System.Net;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>
/// GET /v1/vms/{id}/console-output and Compute.GetConsoleOutput against the fake backend, which
/// answers two synthetic lines: who may read, what is refused, and what the answer says.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class ConsoleOutputTests(CloudFixture cloud) : IDisposable
{
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    private Compute.ComputeClient Compute => new(_channel);

    [Fact]
    public async Task A_member_reads_the_console_of_its_vm_over_rest_and_grpc()
    {
        using var tenant = await cloud.CreateTenantAsync("console");
        var vmId = await tenant.Member.CreateRunningVmAsync("console-vm");

        var (status, rest) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/console-output");
        var grpc = await Compute.GetConsoleOutputAsync(new GetConsoleOutputRequest { Id = vmId }, Tenancy.Bearer(tenant.MemberToken));

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(vmId, rest.Str("vmId"));
        Assert.Contains($"fake console of VM {Guid.Parse(vmId):N} (", rest.Str("output"), StringComparison.Ordinal);
        Assert.Equal("0", rest.GetProperty("start").GetString());
        Assert.Equal(vmId, grpc.VmId);
        Assert.Contains("state Running", grpc.Output, StringComparison.Ordinal);
        Assert.Equal(grpc.Output.Length, grpc.TotalBytes);
    }

    [Fact]
    public async Task A_length_returns_the_tail_and_says_where_it_starts()
    {
        using var tenant = await cloud.CreateTenantAsync("contail");
        var vmId = await tenant.Member.CreateRunningVmAsync("tail-vm");
        var options = Tenancy.Bearer(tenant.MemberToken);
        var whole = await Compute.GetConsoleOutputAsync(new GetConsoleOutputRequest { Id = vmId }, options);

        var tail = await Compute.GetConsoleOutputAsync(new GetConsoleOutputRequest { Id = vmId, Length = 12 }, options);
        var (_, rest) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/console-output?length=12");

        Assert.Equal(whole.Output[^12..], tail.Output);
        Assert.Equal(whole.TotalBytes - 12, tail.Start);
        Assert.Equal(tail.Output, rest.Str("output"));
    }

    [Fact]
    public async Task Another_tenant_gets_not_found_and_a_reader_permission_denied()
    {
        using var owner = await cloud.CreateTenantAsync("conown");
        using var other = await cloud.CreateTenantAsync("conoth");
        var vmId = await owner.Member.CreateRunningVmAsync("private-vm");

        var (otherStatus, otherBody) = await other.Member.GetJsonAsync($"/v1/vms/{vmId}/console-output");
        var otherGrpc = await Assert.ThrowsAsync<RpcException>(() => Compute.GetConsoleOutputAsync(new GetConsoleOutputRequest { Id = vmId }, Tenancy.Bearer(other.MemberToken)).ResponseAsync);
        var (readerStatus, _) = await owner.Reader.GetJsonAsync($"/v1/vms/{vmId}/console-output");
        var readerGrpc = await Assert.ThrowsAsync<RpcException>(() => Compute.GetConsoleOutputAsync(new GetConsoleOutputRequest { Id = vmId }, Tenancy.Bearer(owner.ReaderToken)).ResponseAsync);

        Assert.Equal(HttpStatusCode.NotFound, otherStatus);
        Assert.DoesNotContain("fake console", otherBody.ToString(), StringComparison.Ordinal);
        Assert.Equal(StatusCode.NotFound, otherGrpc.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, readerStatus);
        Assert.Equal(StatusCode.PermissionDenied, readerGrpc.StatusCode);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("1048577")]
    [InlineData("99999999999")]
    [InlineData("ten")]
    public async Task A_length_out_of_bounds_is_a_bad_request(string length)
    {
        using var tenant = await cloud.CreateTenantAsync("conlen");
        var vmId = await tenant.Member.CreateRunningVmAsync("len-vm");

        var (status, body) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}/console-output?length={length}");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("INVALID_ARGUMENT", body.Str("code"));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1024 * 1024 + 1)]
    public async Task A_length_out_of_bounds_is_invalid_argument_over_grpc(int length)
    {
        using var tenant = await cloud.CreateTenantAsync("conglen");
        var vmId = await tenant.Member.CreateRunningVmAsync("glen-vm");

        var error = await Assert.ThrowsAsync<RpcException>(() => Compute.GetConsoleOutputAsync(new GetConsoleOutputRequest { Id = vmId, Length = length }, Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("length", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_vm_on_no_node_is_failed_precondition_and_an_unknown_one_not_found()
    {
        using var tenant = await cloud.CreateTenantAsync("conpend");
        var pending = Guid.NewGuid();
        await cloud.InsertPendingVmAsync(tenant.Id, pending);

        var (status, body) = await tenant.Member.GetJsonAsync($"/v1/vms/{pending}/console-output");
        var grpc = await Assert.ThrowsAsync<RpcException>(() => Compute.GetConsoleOutputAsync(new GetConsoleOutputRequest { Id = pending.ToString() }, Tenancy.Bearer(tenant.MemberToken)).ResponseAsync);
        var (unknownStatus, _) = await tenant.Member.GetJsonAsync($"/v1/vms/{Guid.NewGuid()}/console-output");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("FAILED_PRECONDITION", body.Str("code"));
        Assert.Equal(StatusCode.FailedPrecondition, grpc.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unknownStatus);
    }

    public void Dispose() => _channel.Dispose();
}
