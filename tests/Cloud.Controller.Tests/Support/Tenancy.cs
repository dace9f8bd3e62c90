using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Grpc.Core;

namespace Cloud.Controller.Tests.Support;

/// <summary>A tenant made through the API, with a member's and a reader's token.</summary>
internal sealed record TestTenant(string Id, string MemberToken, string ReaderToken, HttpClient Member, HttpClient Reader) : IDisposable
{
    public void Dispose()
    {
        Member.Dispose();
        Reader.Dispose();
    }
}

/// <summary>Making tenants, tokens and small VMs through the operator's API.</summary>
internal static class Tenancy
{
    /// <summary>A flavor small enough that the tests' VMs never run the fake nodes out of memory.</summary>
    public const string Nano = "t.nano";

    public static async Task<TestTenant> CreateTenantAsync(this CloudFixture cloud, string prefix, string quotaJson = """{"instances":50,"vcpus":100,"memoryMb":"100000","diskGb":"1000","snapshots":20}""")
    {
        await EnsureNanoFlavorAsync(cloud);
        var id = $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 9, 63)];
        var (status, body) = await cloud.Http.PostAsync("/v1/tenants", $$"""{"id":"{{id}}","displayName":"Test {{prefix}}","quota":{{quotaJson}}}""");
        Assert.True(status == HttpStatusCode.Created, body.ToString());
        var member = await cloud.CreateTokenAsync(id, "member");
        var reader = await cloud.CreateTokenAsync(id, "reader");
        return new TestTenant(id, member, reader, cloud.ClientFor(member), cloud.ClientFor(reader));
    }

    public static async Task<string> CreateTokenAsync(this CloudFixture cloud, string tenant, string role)
    {
        var (status, token) = await cloud.Http.PostAsync("/v1/tokens", $$"""{"tenant":"{{tenant}}","name":"{{role}}-token","role":"{{role}}","ttlDays":1}""");
        Assert.True(status == HttpStatusCode.Created, token.ToString());
        return token.Str("secret");
    }

    public static HttpClient ClientFor(this CloudFixture cloud, string token)
    {
        var client = cloud.NewHttpClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    public static CallOptions Bearer(string token)
        => new(new Metadata { { "authorization", "Bearer " + token } }, DateTime.UtcNow.AddSeconds(30));

    private static async Task EnsureNanoFlavorAsync(CloudFixture cloud)
    {
        var (status, _) = await cloud.Http.PostAsync("/v1/flavors", $$"""{"name":"{{Nano}}","vcpus":1,"memoryMb":"64","diskGb":"0","isPublic":true}""");
        Assert.True(status is HttpStatusCode.Created or HttpStatusCode.Conflict);
    }

    /// <summary>Creates a VM and waits for it to run; its id.</summary>
    public static async Task<string> CreateRunningVmAsync(this HttpClient http, string name, string flavor = Nano, string labels = "{}")
    {
        var (status, operation) = await http.PostAsync("/v1/vms", $$"""{"name":"{{name}}","flavor":"{{flavor}}","labels":{{labels}}}""");
        Assert.True(status == HttpStatusCode.Accepted, operation.ToString());
        var done = await http.WaitForOperationAsync(operation.Str("id"));
        Assert.True(done.Str("state") == "SUCCEEDED", done.ToString());
        return operation.Str("targetId");
    }

    /// <summary>
    /// Running VMs named <paramref name="prefix"/>-0.. all on test-node-1: test-node-2 is
    /// cordoned while they are created.
    /// </summary>
    public static async Task<string[]> CreateRunningVmsOnFirstNodeAsync(this CloudFixture cloud, TestTenant tenant, string prefix, int count)
    {
        var vmIds = new string[count];
        Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync("/v1/nodes/test-node-2/cordon", "{}")).Status);
        try
        {
            for (var i = 0; i < count; i++)
            {
                vmIds[i] = await tenant.Member.CreateRunningVmAsync($"{prefix}-{i}");
            }
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await cloud.Http.PostAsync("/v1/nodes/test-node-2/uncordon", "{}")).Status);
        }
        return vmIds;
    }

    /// <summary>Posts a verb and waits for its operation; the finished operation.</summary>
    public static async Task<JsonElement> RunAsync(this HttpClient http, HttpMethod method, string path, string? json = null, string? idempotencyKey = null)
    {
        var (status, operation) = await http.SendAsync(method, path, json, idempotencyKey);
        Assert.True(status == HttpStatusCode.Accepted, $"{method} {path}: {status} {operation}");
        return await http.WaitForOperationAsync(operation.Str("id"));
    }
}
