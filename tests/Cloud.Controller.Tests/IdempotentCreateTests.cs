using System.Net;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tenants;
using Cloud.Controller.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cloud.Controller.Tests;

/// <summary>
/// Idempotency-Key on tenant and token creation, over REST and gRPC: a retry answers the first
/// tenant or token (a token with its secret), concurrent duplicates make one, and the same key
/// with another request is refused without a write.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class IdempotentCreateTests(CloudFixture cloud) : IDisposable
{
    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    private Compute.ComputeClient Compute => new(_channel);

    [Fact]
    public async Task Rest_a_retried_token_create_answers_the_same_token_with_its_secret_and_issues_nothing_new()
    {
        using var tenant = await cloud.CreateTenantAsync("idtok");
        var key = Key();
        var body = $$"""{"tenant":"{{tenant.Id}}","name":"laptop","role":"member","ttlDays":3}""";

        var (first, token) = await cloud.Http.PostAsync("/v1/tokens", body, key);
        var (second, again) = await cloud.Http.PostAsync("/v1/tokens", body, key);

        Assert.Equal(HttpStatusCode.Created, first);
        Assert.Equal(HttpStatusCode.Created, second);
        Assert.Equal(token.Str("id"), again.Str("id"));
        Assert.Equal(token.Str("secret"), again.Str("secret"));
        Assert.Equal(1, await TokensNamedAsync(tenant.Id, "laptop"));
        using var client = cloud.ClientFor(again.Str("secret"));
        Assert.Equal(HttpStatusCode.OK, (await client.GetJsonAsync($"/v1/tenants/{tenant.Id}")).Status);
        // The record keeps the secret sealed, never as it is.
        Assert.Equal(0, await cloud.ScalarAsync(
            "SELECT position(convert_to(@s, 'UTF8') in sealed_secret) FROM idempotency_records WHERE key = @k", ("s", token.Str("secret")), ("k", key)));
    }

    [Fact]
    public async Task Rest_concurrent_token_creates_with_one_key_make_one_token()
    {
        using var tenant = await cloud.CreateTenantAsync("idrace");
        var key = Key();
        var body = $$"""{"tenant":"{{tenant.Id}}","name":"racer","role":"reader"}""";

        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => cloud.Http.PostAsync("/v1/tokens", body, key)));

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.Created, a.Status));
        Assert.Single(answers.Select(a => a.Body.Str("id")).Distinct());
        Assert.Single(answers.Select(a => a.Body.Str("secret")).Distinct());
        Assert.Equal(1, await TokensNamedAsync(tenant.Id, "racer"));
    }

    [Fact]
    public async Task Rest_a_key_reused_for_another_body_or_verb_is_409_and_writes_nothing()
    {
        using var tenant = await cloud.CreateTenantAsync("idreuse");
        var key = Key();
        Assert.Equal(HttpStatusCode.Created, (await cloud.Http.PostAsync("/v1/tokens", $$"""{"tenant":"{{tenant.Id}}","name":"one","role":"member"}""", key)).Status);
        var tokensBefore = await cloud.ScalarAsync("SELECT count(*) FROM api_tokens");
        var tenantsBefore = await cloud.ScalarAsync("SELECT count(*) FROM tenants");

        var (otherBody, problem) = await cloud.Http.PostAsync("/v1/tokens", $$"""{"tenant":"{{tenant.Id}}","name":"two","role":"member"}""", key);
        var newTenant = "idreuse-" + Guid.NewGuid().ToString("N")[..10];
        var (otherVerb, verbProblem) = await cloud.Http.PostAsync("/v1/tenants", $$"""{"id":"{{newTenant}}"}""", key);

        Assert.Equal(HttpStatusCode.Conflict, otherBody);
        Assert.Equal("FAILED_PRECONDITION", problem.Str("code"));
        Assert.Equal("IDEMPOTENCY_KEY_REUSED", problem.GetProperty("details").Str("reason"));
        Assert.Contains($"Idempotency-Key '{key}' was already used", problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Conflict, otherVerb);
        Assert.Equal("IDEMPOTENCY_KEY_REUSED", verbProblem.GetProperty("details").Str("reason"));
        Assert.Equal(tokensBefore, await cloud.ScalarAsync("SELECT count(*) FROM api_tokens"));
        Assert.Equal(tenantsBefore, await cloud.ScalarAsync("SELECT count(*) FROM tenants"));
    }

    [Fact]
    public async Task Rest_a_retried_tenant_create_answers_the_same_tenant_while_a_create_without_key_is_already_exists()
    {
        var id = "idten-" + Guid.NewGuid().ToString("N")[..10];
        var key = Key();
        var body = $$$"""{"id":"{{{id}}}","displayName":"Retried","quota":{"instances":3}}""";

        var answers = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => cloud.Http.PostAsync("/v1/tenants", body, key)));
        var (retry, again) = await cloud.Http.PostAsync("/v1/tenants", body, key);
        var (unkeyed, problem) = await cloud.Http.PostAsync("/v1/tenants", body);

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.Created, a.Status));
        Assert.All(answers, a => Assert.Equal(id, a.Body.Str("id")));
        Assert.Equal(HttpStatusCode.Created, retry);
        Assert.Equal(3, again.GetProperty("quota").GetProperty("instances").GetInt32());
        Assert.Equal(HttpStatusCode.Conflict, unkeyed);
        Assert.Equal("ALREADY_EXISTS", problem.Str("code"));
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM tenants WHERE id = @id", ("id", id)));
    }

    [Fact]
    public async Task A_create_that_failed_keeps_no_record_so_its_retry_runs_again()
    {
        var id = "idlate-" + Guid.NewGuid().ToString("N")[..10];
        var key = Key();
        var body = $$"""{"tenant":"{{id}}","name":"early","role":"member"}""";

        var (missing, problem) = await cloud.Http.PostAsync("/v1/tokens", body, key);
        Assert.Equal(HttpStatusCode.NotFound, missing);
        Assert.Equal("NOT_FOUND", problem.Str("code"));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM idempotency_records WHERE key = @k", ("k", key)));

        Assert.Equal(HttpStatusCode.Created, (await cloud.Http.PostAsync("/v1/tenants", $$"""{"id":"{{id}}"}""")).Status);
        var (created, token) = await cloud.Http.PostAsync("/v1/tokens", body, key);
        Assert.Equal(HttpStatusCode.Created, created);
        Assert.Equal(token.Str("id"), (await cloud.Http.PostAsync("/v1/tokens", body, key)).Body.Str("id"));
    }

    [Fact]
    public async Task A_secret_that_cannot_be_unsealed_is_not_reissued_the_retry_is_told_so()
    {
        using var tenant = await cloud.CreateTenantAsync("idseal");
        var (key, body, token) = await IssueWithKeyAsync(tenant, "sealed");
        // As if another replica with another sealing key had sealed it.
        await cloud.QueryAsync("UPDATE idempotency_records SET sealed_secret = set_byte(sealed_secret, 30, get_byte(sealed_secret, 30) # 1) WHERE key = @k", ("k", key));

        var (status, problem) = await cloud.Http.PostAsync("/v1/tokens", body, key);

        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("FAILED_PRECONDITION", problem.Str("code"));
        Assert.Equal("SECRET_ALREADY_ISSUED", problem.GetProperty("details").Str("reason"));
        Assert.Contains(token.Str("id"), problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(1, await TokensNamedAsync(tenant.Id, "sealed"));
    }

    [Fact]
    public async Task After_the_window_the_record_is_purged_and_the_key_makes_a_new_token()
    {
        using var tenant = await cloud.CreateTenantAsync("idwin");
        var (key, body, first) = await IssueWithKeyAsync(tenant, "windowed");
        await cloud.QueryAsync("UPDATE idempotency_records SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day' WHERE key = @k", ("k", key));

        var (status, second) = await cloud.Http.PostAsync("/v1/tokens", body, key);

        Assert.Equal(HttpStatusCode.Created, status);
        Assert.NotEqual(first.Str("id"), second.Str("id"));
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM idempotency_records WHERE key = @k", ("k", key)));
        Assert.Equal(0, await cloud.ScalarAsync("SELECT count(*) FROM idempotency_records WHERE expires_at <= now()"));
    }

    [Fact]
    public async Task Grpc_retries_and_concurrent_duplicates_answer_one_token_and_one_tenant()
    {
        var options = Tenancy.Bearer(CloudFixture.OperatorToken);
        var id = "idgrpc-" + Guid.NewGuid().ToString("N")[..10];
        var tenantKey = Key();
        var tenants = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ =>
            Compute.CreateTenantAsync(new CreateTenantRequest { Id = id, DisplayName = "gRPC", IdempotencyKey = tenantKey }, options).ResponseAsync));
        Assert.All(tenants, t => Assert.Equal(id, t.Id));

        var request = new CreateTokenRequest { Tenant = id, Name = "grpc", Role = "member", IdempotencyKey = Key() };
        var tokens = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Compute.CreateTokenAsync(request, options).ResponseAsync));
        var retried = await Compute.CreateTokenAsync(request, options);

        Assert.Single(tokens.Select(t => t.Id).Append(retried.Id).Distinct());
        Assert.Single(tokens.Select(t => t.Secret).Append(retried.Secret).Distinct());
        Assert.StartsWith("cloud_", retried.Secret, StringComparison.Ordinal);
        Assert.Equal(1, await TokensNamedAsync(id, "grpc"));

        var reused = await Assert.ThrowsAsync<RpcException>(() => Compute.CreateTokenAsync(request.Clone().Also(r => r.Role = "reader"), options).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, reused.StatusCode);
        Assert.Equal("IDEMPOTENCY_KEY_REUSED", reused.GetRpcStatus()?.GetDetail<Google.Rpc.ErrorInfo>()?.Reason);
        Assert.Equal(1, await cloud.ScalarAsync("SELECT count(*) FROM api_tokens WHERE tenant_id = @t", ("t", id)));
    }

    [Theory]
    [InlineData("has space")]
    [InlineData("")]
    public async Task A_malformed_key_on_tenant_or_token_create_is_refused_and_writes_nothing(string key)
    {
        var before = await CountsAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/tenants")
        {
            Content = new StringContent("""{"id":"never-made"}""", System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        using var response = await cloud.Http.SendAsync(request);
        var grpc = await Assert.ThrowsAsync<RpcException>(() => Compute.CreateTokenAsync(
            new CreateTokenRequest { Role = "operator", Name = "never", IdempotencyKey = key.Length == 0 ? new string('k', 129) : key }, Tenancy.Bearer(CloudFixture.OperatorToken)).ResponseAsync);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("Idempotency-Key must be", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(StatusCode.InvalidArgument, grpc.StatusCode);
        Assert.Contains("Idempotency-Key must be", grpc.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(before, await CountsAsync());
    }

    [Theory]
    [InlineData("00:00:30", null, "Idempotency:Window")]
    [InlineData("8.00:00:00", null, "Idempotency:Window")]
    [InlineData("01:00:00", "c2hvcnQ=", "Idempotency:SealingKey")]
    [InlineData("01:00:00", "not base64!", "Idempotency:SealingKey")]
    public void Bad_idempotency_settings_are_named(string window, string? key, string named)
    {
        var problem = IdempotencyOptions.Problem(new IdempotencyOptions { Window = TimeSpan.Parse(window, System.Globalization.CultureInfo.InvariantCulture), SealingKey = key });
        Assert.NotNull(problem);
        Assert.Contains(named, problem, StringComparison.Ordinal);
        Assert.Null(IdempotencyOptions.Problem(new IdempotencyOptions { SealingKey = Convert.ToBase64String(new byte[32]) }));
    }

    private static string Key() => "key-" + Guid.NewGuid().ToString("N");

    /// <summary>Issues a member token with a fresh key; the key, the body to retry with, and the answer.</summary>
    private async Task<(string Key, string Body, System.Text.Json.JsonElement Token)> IssueWithKeyAsync(TestTenant tenant, string name)
    {
        var key = Key();
        var body = $$"""{"tenant":"{{tenant.Id}}","name":"{{name}}","role":"member"}""";
        var (status, token) = await cloud.Http.PostAsync("/v1/tokens", body, key);
        Assert.Equal(HttpStatusCode.Created, status);
        return (key, body, token);
    }

    private Task<long> TokensNamedAsync(string tenant, string name)
        => cloud.ScalarAsync("SELECT count(*) FROM api_tokens WHERE tenant_id = @t AND name = @n", ("t", tenant), ("n", name));

    private async Task<string> CountsAsync()
        => (string)(await cloud.QueryAsync(
            "SELECT concat_ws('|', (SELECT count(*) FROM tenants), (SELECT count(*) FROM api_tokens), (SELECT count(*) FROM idempotency_records))"))!;

    public void Dispose() => _channel.Dispose();
}

internal static class MessageExtensions
{
    /// <summary>Changes a copy in place and hands it back, for one-line variations of a request.</summary>
    public static T Also<T>(this T value, Action<T> change)
    {
        change(value);
        return value;
    }
}
