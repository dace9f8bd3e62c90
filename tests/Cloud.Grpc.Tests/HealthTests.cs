using Cloud.Grpc.Health.V1;
using Cloud.Grpc.Tests.Support;
using ServingStatus = Cloud.Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cloud.Grpc.Tests;

public class HealthTests(EchoServerFixture fixture) : IClassFixture<EchoServerFixture>
{
    private GrpcTestServer Server => fixture.Server;

    [Fact]
    public async Task Check_WholeServer_IsServingByDefault()
    {
        using var channel = GrpcChannel.ForAddress(Server.Address);
        var response = await new HealthGrpc.HealthClient(channel).CheckAsync(new HealthCheckRequest());
        Assert.Equal(ServingStatus.Serving, response.Status);
    }

    [Fact]
    public async Task Check_UnknownService_IsNotFound()
    {
        using var channel = GrpcChannel.ForAddress(Server.Address);
        var ex = await Assert.ThrowsAsync<RpcException>(() => new HealthGrpc.HealthClient(channel).CheckAsync(new HealthCheckRequest { Service = "nobody.v1.Nothing" }));
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
    }

    [Fact]
    public async Task Check_ReflectsSetStatus()
    {
        using var channel = GrpcChannel.ForAddress(Server.Address);
        var client = new HealthGrpc.HealthClient(channel);
        Server.Health.SetStatus("check.v1.Svc", ServingStatus.NotServing);
        Assert.Equal(ServingStatus.NotServing, (await client.CheckAsync(new HealthCheckRequest { Service = "check.v1.Svc" })).Status);
        Server.Health.SetStatus("check.v1.Svc", ServingStatus.Serving);
        Assert.Equal(ServingStatus.Serving, (await client.CheckAsync(new HealthCheckRequest { Service = "check.v1.Svc" })).Status);
    }

    [Fact]
    public async Task Watch_StreamsServiceUnknownThenEveryChange()
    {
        using var channel = GrpcChannel.ForAddress(Server.Address);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var call = new HealthGrpc.HealthClient(channel).Watch(new HealthCheckRequest { Service = "watch.v1.Svc" }, new CallOptions(CancellationToken: cts.Token));

        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(ServingStatus.ServiceUnknown, call.ResponseStream.Current.Status);

        Server.Health.SetStatus("watch.v1.Svc", ServingStatus.Serving);
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(ServingStatus.Serving, call.ResponseStream.Current.Status);

        Server.Health.SetStatus("watch.v1.Svc", ServingStatus.NotServing);
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(ServingStatus.NotServing, call.ResponseStream.Current.Status);

        Server.Health.ClearStatus("watch.v1.Svc");
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(ServingStatus.ServiceUnknown, call.ResponseStream.Current.Status);
    }
}
