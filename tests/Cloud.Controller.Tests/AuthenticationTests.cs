using System.Net;
using System.Net.Http.Headers;
using Cloud.Contracts.Compute.V1;
using Cloud.Contracts.Node.V1;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using NodeInfo = Cloud.Contracts.Agent.V1.NodeInfo;

namespace Cloud.Controller.Tests;

/// <summary>
/// One authentication for REST and gRPC: API tokens reach the API and only the API, the agents'
/// token reaches the node registry and image pulls and nothing else, and every refusal answers
/// in the caller's protocol with the same code.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class AuthenticationTests(CloudFixture cloud) : IDisposable
{
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    private static CallOptions Bearer(string? token)
        => new(token is null ? [] : new Metadata { { "authorization", "Bearer " + token } }, DateTime.UtcNow.AddSeconds(30));

    [Theory]
    [InlineData(null)]
    [InlineData("not-a-token")]
    public async Task The_grpc_api_refuses_a_caller_without_a_valid_token_as_unauthenticated(string? token)
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => new Compute.ComputeClient(_channel).ListVmsAsync(new ListVmsRequest(), Bearer(token)).ResponseAsync);

        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        Assert.Contains("Bearer <token>", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_rest_api_refuses_a_missing_unknown_or_revoked_token_with_problem_details()
    {
        var tenant = await cloud.CreateTenantAsync("authrest");
        var (created, token) = await cloud.Http.PostAsync("/v1/tokens", $$"""{"tenant":"{{tenant.Id}}","name":"short-lived","role":"member"}""");
        Assert.Equal(HttpStatusCode.Created, created);
        using var revokedClient = RestAs(token.Str("secret"));
        Assert.Equal(HttpStatusCode.OK, (await revokedClient.GetAsync("/v1/vms")).StatusCode);
        using var revoke = await cloud.Http.DeleteAsync($"/v1/tokens/{token.Str("id")}");
        Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);

        foreach (var (client, path) in new[] { RestAs(null), RestAs("not-a-token"), revokedClient }.SelectMany(c => new[] { (c, "/v1/vms"), (c, "/v1/capacity") }))
        {
            using var response = await client.GetAsync(path);
            var problem = await ProblemAsync(response);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
            Assert.Equal("UNAUTHENTICATED", problem.Str("code"));
            Assert.Contains("Authorization: Bearer <token>", problem.Str("detail"), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Node_services_answer_only_on_the_node_port_and_the_api_not_there()
    {
        var before = await cloud.ScalarAsync("SELECT count(*) FROM nodes");
        var request = new RegisterRequest { Node = new NodeInfo { NodeName = "intruder", Hypervisor = "fake" }, AgentAddress = "https://127.0.0.9:7070" };

        // An operator's token on the public port does not reach the registry.
        var onPublicPort = await Assert.ThrowsAsync<RpcException>(() =>
            new NodeRegistry.NodeRegistryClient(_channel).RegisterAsync(request, Bearer(CloudFixture.OperatorToken)).ResponseAsync);
        // A node's certificate on the node port does not reach the compute API.
        using var nodeChannel = cloud.NewNodeChannel("intruder");
        var onNodePort = await Assert.ThrowsAsync<RpcException>(() =>
            new Compute.ComputeClient(nodeChannel).ListVmsAsync(new ListVmsRequest(), Bearer(CloudFixture.OperatorToken)).ResponseAsync);

        Assert.Equal(StatusCode.Unimplemented, onPublicPort.StatusCode);
        Assert.Equal(StatusCode.Unimplemented, onNodePort.StatusCode);
        Assert.Equal(before, await cloud.ScalarAsync("SELECT count(*) FROM nodes"));
    }

    /// <summary>
    /// Every endpoint the controller maps names who may call it, except the few that are public
    /// by design: probes, the API description, the console's static page, health and reflection.
    /// A new endpoint without a policy fails here before it reaches anyone.
    /// </summary>
    [Fact]
    public void Every_endpoint_requires_a_policy_except_the_public_ones()
    {
        var endpoints = cloud.ControllerServices.GetRequiredService<Microsoft.AspNetCore.Routing.EndpointDataSource>().Endpoints
            .OfType<Microsoft.AspNetCore.Routing.RouteEndpoint>().ToList();
        var open = endpoints
            .Where(e => e.Metadata.GetMetadata<Microsoft.AspNetCore.Authorization.IAuthorizeData>() is null)
            .Select(e => e.RoutePattern.RawText ?? "")
            .Where(p => !p.StartsWith("/grpc.health.v1.Health/", StringComparison.Ordinal)
                && !p.StartsWith("/grpc.reflection.", StringComparison.Ordinal)
                && !p.StartsWith("/healthz", StringComparison.Ordinal)
                && !p.StartsWith("/openapi/", StringComparison.Ordinal)
                && !p.StartsWith("/console", StringComparison.Ordinal)
                // "/" redirects to the console.
                && p != "/"
                // grpc-dotnet's catch-alls that answer UNIMPLEMENTED for unknown methods and services.
                && !p.Contains("{unimplementedMethod", StringComparison.Ordinal)
                && !p.Contains("{unimplementedService", StringComparison.Ordinal))
            .ToList();

        Assert.Empty(open);
        Assert.Contains(endpoints, e => e.RoutePattern.RawText == "/cloud.compute.v1.Compute/CreateVm");
        Assert.All(endpoints.Where(e => e.RoutePattern.RawText?.StartsWith("/v1", StringComparison.Ordinal) == true),
            e => Assert.Contains(Cloud.Controller.Auth.CloudPolicies.Api, e.Metadata.GetOrderedMetadata<Microsoft.AspNetCore.Authorization.IAuthorizeData>().Select(a => a.Policy)));
    }

    private HttpClient RestAs(string? token)
    {
        var client = cloud.NewHttpClient();
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        return client;
    }

    private static async Task<System.Text.Json.JsonElement> ProblemAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
    }

    public void Dispose() => _channel.Dispose();
}
