using System.Net;
using System.Security.Cryptography.X509Certificates;
using Cloud.Agent.Identity;
using Cloud.Contracts.Agent.V1;
using Cloud.Contracts.Node.V1;
using Cloud.Contracts.Trust;
using Cloud.Controller.Tests.Support;
using Cloud.Testing;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>
/// Every node proves who it is: what the node port, the public ports and the agents' ports take
/// and refuse, join tokens, node authorization, and revocation, over real TLS.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class NodeTrustTests(CloudFixture cloud)
{
    private static CallOptions Soon => new(deadline: DateTime.UtcNow.AddSeconds(15));

    [Fact]
    public async Task Without_a_certificate_the_node_port_answers_only_join()
    {
        using var channel = TestTrust.Shared.Channel(cloud.NodeUrl);
        var registry = new NodeRegistry.NodeRegistryClient(channel);

        var register = await Assert.ThrowsAsync<RpcException>(() => registry.RegisterAsync(Registration("test-node-1", "https://127.0.0.2:7070"), Soon).ResponseAsync);
        var heartbeat = await Assert.ThrowsAsync<RpcException>(() => registry.HeartbeatAsync(new HeartbeatRequest { NodeId = Guid.NewGuid().ToString() }, Soon).ResponseAsync);
        var renew = await Assert.ThrowsAsync<RpcException>(() => new NodeTrust.NodeTrustClient(channel).RenewAsync(new RenewRequest(), Soon).ResponseAsync);
        var pull = await Assert.ThrowsAsync<RpcException>(() => ReadImageAsync(channel, "anything"));
        var join = await Assert.ThrowsAsync<RpcException>(() => JoinAsync(channel, "test-node-1", "cjt_not-a-token"));

        Assert.All(new[] { register, heartbeat, renew, pull }, e => Assert.Equal(StatusCode.Unauthenticated, e.StatusCode));
        Assert.Contains("certificate", register.Status.Detail, StringComparison.Ordinal);
        // Join is reached, and says what is wrong with the token.
        Assert.Equal(StatusCode.Unauthenticated, join.StatusCode);
        Assert.Contains("join token", join.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_certificate_from_another_ca_or_an_expired_one_is_refused_on_every_internal_port()
    {
        var stranger = TestTrust.NewStranger().Node("test-node-1");
        var expired = TestTrust.Shared.Issue(CloudIdentity.NodeSubject("test-node-1"), CloudIdentity.NodeUri("test-node-1"), [IPAddress.Loopback],
            notBefore: DateTimeOffset.UtcNow.AddDays(-2), lifetime: TimeSpan.FromDays(1));
        var strangerController = TestTrust.NewStranger().Controller;

        foreach (var certificate in new[] { stranger, expired })
        {
            using var node = TestTrust.Shared.Channel(cloud.NodeUrl, certificate);
            var error = await Assert.ThrowsAsync<RpcException>(() =>
                new NodeRegistry.NodeRegistryClient(node).RegisterAsync(Registration("test-node-1", "https://127.0.0.2:7070"), Soon).ResponseAsync);
            AssertHandshakeRefused(error);
        }
        foreach (var agentUrl in cloud.AgentUrls)
        {
            foreach (var certificate in new[] { stranger, expired, strangerController })
            {
                using var agent = TestTrust.Shared.Channel(agentUrl, certificate);
                AssertHandshakeRefused(await Assert.ThrowsAsync<RpcException>(() => new NodeAgent.NodeAgentClient(agent).ListVmsAsync(new ListVmsRequest(), Soon).ResponseAsync));
            }
            using var anonymous = TestTrust.Shared.Channel(agentUrl);
            AssertHandshakeRefused(await Assert.ThrowsAsync<RpcException>(() => new NodeAgent.NodeAgentClient(anonymous).ListVmsAsync(new ListVmsRequest(), Soon).ResponseAsync));
        }
    }

    [Fact]
    public async Task Plaintext_is_refused_on_every_port()
    {
        var ports = new[] { cloud.RestUrl, cloud.GrpcUrl, cloud.NodeUrl }.Concat(cloud.AgentUrls);
        foreach (var url in ports)
        {
            using var channel = GrpcChannel.ForAddress(new UriBuilder(url) { Scheme = "http" }.Uri);
            var error = await Assert.ThrowsAsync<RpcException>(() => new Grpc.Health.V1.Health.HealthClient(channel)
                .CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), Soon).ResponseAsync);
            // No service answered (health answers anyone): the TLS port did not speak to h2c at all.
            Assert.True(error.StatusCode is StatusCode.Internal or StatusCode.Unavailable, $"{url}: {error}");
        }
        using var http = new HttpClient { BaseAddress = new UriBuilder(cloud.RestUrl) { Scheme = "http" }.Uri, Timeout = TimeSpan.FromSeconds(15) };
        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync("/v1/vms"));
    }

    [Fact]
    public async Task A_node_speaks_only_for_itself()
    {
        var nodeTwoId = (Guid)(await cloud.QueryAsync("SELECT id FROM nodes WHERE name = 'test-node-2'"))!;
        using var channel = cloud.NewNodeChannel("test-node-1");
        var registry = new NodeRegistry.NodeRegistryClient(channel);

        var register = await Assert.ThrowsAsync<RpcException>(() => registry.RegisterAsync(Registration("test-node-2", "https://127.0.0.9:7070"), Soon).ResponseAsync);
        var heartbeat = await Assert.ThrowsAsync<RpcException>(() => registry.HeartbeatAsync(new HeartbeatRequest { NodeId = nodeTwoId.ToString() }, Soon).ResponseAsync);

        Assert.Equal(StatusCode.PermissionDenied, register.StatusCode);
        Assert.Equal(StatusCode.PermissionDenied, heartbeat.StatusCode);
        Assert.Contains("test-node-2", heartbeat.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(cloud.AgentUrls[1].GetLeftPart(UriPartial.Authority),
            await cloud.QueryAsync("SELECT address FROM nodes WHERE name = 'test-node-2'"));

        // On the agents' ports a node's certificate reads only what moves read, never another node's VMs.
        using var peer = TestTrust.Shared.Channel(cloud.AgentUrls[1], TestTrust.Shared.Node("test-node-1"));
        var agent = new NodeAgent.NodeAgentClient(peer);
        var list = await Assert.ThrowsAsync<RpcException>(() => agent.ListVmsAsync(new ListVmsRequest(), Soon).ResponseAsync);
        var delete = await Assert.ThrowsAsync<RpcException>(() => agent.DeleteVmAsync(new VmRef { VmId = Guid.NewGuid().ToString("N") }, Soon).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, list.StatusCode);
        Assert.Equal(StatusCode.PermissionDenied, delete.StatusCode);
        // A QEMU certificate, which guests' processes can read, is nobody on the gRPC ports.
        using var qemu = TestTrust.Shared.Channel(cloud.AgentUrls[1],
            TestTrust.Shared.Issue(CloudIdentity.QemuSubject("test-node-2"), CloudIdentity.QemuUri("test-node-2"), [IPAddress.Loopback]));
        var asQemu = await Assert.ThrowsAsync<RpcException>(() => new NodeAgent.NodeAgentClient(qemu).ListVmsAsync(new ListVmsRequest(), Soon).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, asQemu.StatusCode);
        // The controller's certificate may.
        using var controller = cloud.NewAgentChannel(cloud.AgentUrls[1]);
        await new NodeAgent.NodeAgentClient(controller).ListVmsAsync(new ListVmsRequest(), Soon);
    }

    [Fact]
    public async Task A_node_pulls_only_an_image_that_one_of_its_vms_needs()
    {
        var imageId = await cloud.Http.UploadedImageAsync("trust-pull", "raw", ImageUploads.RawBytes(64 * 1024));
        using var nodeOne = cloud.NewNodeChannel("test-node-1");
        using var nodeTwo = cloud.NewNodeChannel("test-node-2");

        var unneeded = await Assert.ThrowsAsync<RpcException>(() => ReadImageAsync(nodeOne, imageId));
        Assert.Equal(StatusCode.NotFound, unneeded.StatusCode);

        var vmId = await cloud.Http.CreateRunningVmFromImageAsync(imageId, "trust-pull-vm");
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");
        var (holder, other) = vm.Str("node") == "test-node-1" ? (nodeOne, nodeTwo) : (nodeTwo, nodeOne);

        Assert.Equal(64 * 1024, await ReadImageAsync(holder, imageId));
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => ReadImageAsync(other, imageId))).StatusCode);
        using var deleted = await cloud.Http.DeleteAsync($"/v1/vms/{vmId}");
    }

    [Fact]
    public async Task A_join_token_works_once_for_its_node_only_and_not_after_it_expires()
    {
        using var channel = TestTrust.Shared.Channel(cloud.NodeUrl);
        var token = await cloud.CreateJoinTokenAsync("joiner-a");

        var wrongNode = await Assert.ThrowsAsync<RpcException>(() => JoinAsync(channel, "joiner-b", token));
        var issued = await JoinAsync(channel, "joiner-a", token);
        var again = await Assert.ThrowsAsync<RpcException>(() => JoinAsync(channel, "joiner-a", token));

        Assert.Equal(StatusCode.Unauthenticated, wrongNode.StatusCode);
        Assert.Equal(StatusCode.Unauthenticated, again.StatusCode);
        Assert.Equal("joiner-a", CloudIdentity.NodeOf(issued.Node));
        Assert.Equal(CloudIdentity.QemuUri("joiner-a"), CloudIdentity.IdentityUriOf(issued.Qemu));
        Assert.True(CertificateAuthority.Verifies(TestTrust.Shared.Authority.Certificate, issued.Node, DateTime.UtcNow));
        Assert.InRange(issued.Node.NotAfter.ToUniversalTime(), DateTime.UtcNow.AddHours(23), DateTime.UtcNow.AddHours(25));
        Assert.Equal(2, await cloud.ScalarAsync("SELECT count(*) FROM node_certificates WHERE node_name = 'joiner-a'"));

        var expiring = await cloud.CreateJoinTokenAsync("joiner-c");
        await cloud.ScalarAsync("UPDATE node_join_tokens SET expires_at = now() - interval '1 second' WHERE node_name = 'joiner-c' RETURNING 1");
        Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() => JoinAsync(channel, "joiner-c", expiring))).StatusCode);
    }

    [Fact]
    public async Task Join_checks_its_requests_and_only_operators_make_tokens()
    {
        using var channel = TestTrust.Shared.Channel(cloud.NodeUrl);
        var client = new NodeTrust.NodeTrustClient(channel);
        using var keys = NodeIdentity.NewKeys(["127.0.0.2"]);
        var badCsr = new JoinRequest { NodeName = "joiner-d", JoinToken = await cloud.CreateJoinTokenAsync("joiner-d"), Requests = new CertificateRequests { NodeCsr = "not a csr", QemuCsr = keys.Requests.QemuCsr, Addresses = { "127.0.0.9" } } };
        var othersAddress = new JoinRequest { NodeName = "joiner-e", JoinToken = await cloud.CreateJoinTokenAsync("joiner-e"), Requests = keys.Requests };

        Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => client.JoinAsync(badCsr, Soon).ResponseAsync)).StatusCode);
        var taken = await Assert.ThrowsAsync<RpcException>(() => client.JoinAsync(othersAddress, Soon).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, taken.StatusCode);
        Assert.Contains("test-node-1", taken.Status.Detail, StringComparison.Ordinal);

        var tenant = await cloud.CreateTenantAsync("jointoken");
        var (status, _) = await tenant.Member.PostAsync("/v1/nodes/joiner-f/join-tokens", "{}");
        var (badTtl, problem) = await cloud.Http.PostAsync("/v1/nodes/joiner-f/join-tokens", """{"ttlSeconds":5}""");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal(HttpStatusCode.BadRequest, badTtl);
        Assert.Contains("ttl_seconds", problem.Str("detail"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Deleting_a_node_revokes_its_certificates_at_once()
    {
        using var joinChannel = TestTrust.Shared.Channel(cloud.NodeUrl);
        var issued = await JoinAsync(joinChannel, "doomed", await cloud.CreateJoinTokenAsync("doomed"), "127.0.0.19");
        using var channel = TestTrust.Shared.Channel(cloud.NodeUrl, issued.Node);
        var registry = new NodeRegistry.NodeRegistryClient(channel);
        await registry.RegisterAsync(Registration("doomed", "https://127.0.0.19:7070"), Soon);

        var (deleted, answer) = await cloud.Http.SendAsync(HttpMethod.Delete, "/v1/nodes/doomed");
        var refused = await Assert.ThrowsAsync<RpcException>(() => registry.RegisterAsync(Registration("doomed", "https://127.0.0.19:7070"), Soon).ResponseAsync);
        var (unknown, _) = await cloud.Http.SendAsync(HttpMethod.Delete, "/v1/nodes/never-was");

        Assert.Equal(HttpStatusCode.OK, deleted);
        Assert.Equal(2, answer.GetProperty("revokedCertificates").GetInt32());
        Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
        Assert.Contains("revoked", refused.Status.Detail, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM nodes WHERE name = 'doomed'"));
        Assert.Equal(HttpStatusCode.NotFound, unknown);
    }

    [Fact]
    public async Task A_node_that_holds_vms_is_not_deleted()
    {
        var vmId = await cloud.Http.CreateRunningVmAsync("trust-holder", "m1.tiny");
        var (_, vm) = await cloud.Http.GetJsonAsync($"/v1/vms/{vmId}");

        var (status, problem) = await cloud.Http.SendAsync(HttpMethod.Delete, $"/v1/nodes/{vm.Str("node")}");

        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Contains("drain it first", problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM node_certificates WHERE revoked_at IS NOT NULL AND node_name LIKE 'test-node-%'"));
        using var deleted = await cloud.Http.DeleteAsync($"/v1/vms/{vmId}");
    }

    /// <summary>The TLS handshake failed, so the call never reached a service (which would answer UNAUTHENTICATED or PERMISSION_DENIED).</summary>
    private static void AssertHandshakeRefused(RpcException error)
    {
        Assert.True(error.StatusCode is StatusCode.Internal or StatusCode.Unavailable, error.ToString());
        Assert.Matches("SSL|TLS|handshake|connection", error.Status.Detail + error.Status.DebugException?.ToString());
    }

    internal static RegisterRequest Registration(string node, string address)
        => new() { Node = new NodeInfo { NodeName = node, Hypervisor = "fake" }, AgentAddress = address };

    private static async Task<int> ReadImageAsync(GrpcChannel channel, string imageId)
    {
        using var call = new ImageSource.ImageSourceClient(channel).ReadImage(new ReadImageRequest { ImageId = imageId }, Soon);
        var bytes = 0;
        while (await call.ResponseStream.MoveNext())
        {
            bytes += call.ResponseStream.Current.Data.Length;
        }
        return bytes;
    }

    internal static async Task<(X509Certificate2 Node, X509Certificate2 Qemu)> JoinAsync(GrpcChannel channel, string node, string token, string address = "127.0.0.29")
    {
        using var keys = NodeIdentity.NewKeys([address]);
        var issued = await new NodeTrust.NodeTrustClient(channel).JoinAsync(
            new JoinRequest { NodeName = node, JoinToken = token, Requests = keys.Requests }, Soon);
        using var nodeCertificate = X509Certificate2.CreateFromPem(issued.NodeCertificate);
        return (CertificateAuthority.WithKey(nodeCertificate, keys.NodeKey), X509Certificate2.CreateFromPem(issued.QemuCertificate));
    }
}
