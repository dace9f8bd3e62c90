using System.Net;
using Inventory = Cloud.Contracts.Agent.V1.Inventory;
using NodeInfo = Cloud.Contracts.Agent.V1.NodeInfo;
using Cloud.Contracts.Compute.V1;
using Cloud.Contracts.Node.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>The compute API and the node registry over gRPC, as agents and SDKs call them.</summary>
[Collection(CloudCollection.Name)]
public sealed class GrpcApiTests(CloudFixture cloud) : IDisposable
{
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    private static CallOptions Authorized(string token = CloudFixture.OperatorToken)
        => new(new Metadata { { "authorization", "Bearer " + token } }, DateTime.UtcNow.AddSeconds(30));

    [Fact]
    public async Task CreateVm_over_grpc_runs_the_same_operation_as_rest()
    {
        var compute = new Compute.ComputeClient(_channel);
        var operation = await compute.CreateVmAsync(new CreateVmRequest { Name = "grpc-vm", Flavor = "m1.tiny" }, Authorized());
        Assert.Equal("vm.create", operation.Kind);

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (operation.State is not ("SUCCEEDED" or "FAILED") && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
            operation = await compute.GetOperationAsync(new GetOperationRequest { Id = operation.Id }, Authorized());
        }
        Assert.Equal("SUCCEEDED", operation.State);
        var vm = await compute.GetVmAsync(new GetVmRequest { Id = operation.TargetId }, Authorized());
        Assert.Equal("RUNNING", vm.State);
        Assert.Equal("grpc-vm", vm.Name);
    }

    [Fact]
    public async Task Errors_carry_the_same_code_on_grpc_as_on_rest()
    {
        var compute = new Compute.ComputeClient(_channel);
        var unknownFlavor = await Assert.ThrowsAsync<RpcException>(() =>
            compute.CreateVmAsync(new CreateVmRequest { Name = "x", Flavor = "nope" }, Authorized()).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknownFlavor.StatusCode);
        Assert.Contains("Flavor 'nope'", unknownFlavor.Status.Detail, StringComparison.Ordinal);

        var badName = await Assert.ThrowsAsync<RpcException>(() =>
            compute.CreateVmAsync(new CreateVmRequest { Name = new string('n', 100), Flavor = "m1.tiny" }, Authorized()).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badName.StatusCode);

        var anonymous = await Assert.ThrowsAsync<RpcException>(() => compute.ListVmsAsync(new ListVmsRequest(), Authorized("wrong")).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, anonymous.StatusCode);
    }

    [Fact]
    public async Task Register_refuses_a_negative_inventory_and_records_nothing()
    {
        var before = await cloud.ScalarAsync("SELECT count(*) FROM nodes");
        using var channel = cloud.NewNodeChannel("liar");
        var registry = new NodeRegistry.NodeRegistryClient(channel);
        var node = new NodeInfo { NodeName = "liar", Hypervisor = "fake" };
        node.Inventories.Add(new Inventory { ResourceClass = "VCPU", Total = -4, AllocationRatio = 1 });

        var error = await Assert.ThrowsAsync<RpcException>(() =>
            registry.RegisterAsync(new RegisterRequest { Node = node, AgentAddress = "https://127.0.0.9:7070" }, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(30))).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("VCPU", error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(before, await cloud.ScalarAsync("SELECT count(*) FROM nodes"));
    }

    [Fact]
    public async Task A_frame_that_lies_about_its_length_is_refused()
    {
        var before = await cloud.ScalarAsync("SELECT count(*) FROM operations");
        using var http = new HttpClient(Cloud.Testing.TestTrust.Shared.Handler());
        // The prefix announces 1,000 bytes; only 3 follow before the stream ends.
        byte[] body = [0, 0, 0, 0x03, 0xE8, 0x0A, 0x01, 0x78];
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(cloud.GrpcUrl, "/cloud.compute.v1.Compute/CreateVm"))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(body),
        };
        request.Content.Headers.ContentType = new("application/grpc");
        request.Headers.TryAddWithoutValidation("te", "trailers");
        request.Headers.TryAddWithoutValidation("authorization", "Bearer " + CloudFixture.OperatorToken);

        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await response.Content.ReadAsByteArrayAsync();
        // A trailers-only response carries the status in its headers, any other in its trailers.
        var grpcStatus = response.Headers.NonValidated.TryGetValues("grpc-status", out var h) ? h.ToString()
            : response.TrailingHeaders.NonValidated.TryGetValues("grpc-status", out var t) ? t.ToString()
            : null;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(((int)StatusCode.Internal).ToString(System.Globalization.CultureInfo.InvariantCulture), grpcStatus);
        Assert.Equal(before, await cloud.ScalarAsync("SELECT count(*) FROM operations"));
    }

    public void Dispose() => _channel.Dispose();
}
