using System.Net;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>Bad input gets a clear error with a stable code, and nothing changes in PostgreSQL.</summary>
[Collection(CloudCollection.Name)]
public sealed class BadInputTests(CloudFixture cloud)
{
    public static TheoryData<string, string, HttpStatusCode, string, string> Cases => new()
    {
        { "/v1/vms", "{\"name\": \"x\", ", HttpStatusCode.BadRequest, "INVALID_ARGUMENT", "Malformed JSON" },
        { "/v1/vms", "[1, 2, 3]", HttpStatusCode.BadRequest, "INVALID_ARGUMENT", "Malformed JSON" },
        { "/v1/vms", """{"name":"a","flavor":"m1.tiny","colour":"red"}""", HttpStatusCode.BadRequest, "INVALID_ARGUMENT", "colour" },
        { "/v1/vms", """{"name":"vm-x","flavor":"no-such-flavor"}""", HttpStatusCode.NotFound, "NOT_FOUND", "Flavor 'no-such-flavor'" },
        { "/v1/vms", """{"name":"vm-x","flavor":"m1.tiny","image":"no-such-image"}""", HttpStatusCode.NotFound, "NOT_FOUND", "Image 'no-such-image'" },
        { "/v1/vms", "{\"name\":\"" + new string('a', 64) + "\",\"flavor\":\"m1.tiny\"}", HttpStatusCode.BadRequest, "INVALID_ARGUMENT", "at most 63" },
        { "/v1/vms", """{"name":"Bad_Name","flavor":"m1.tiny"}""", HttpStatusCode.BadRequest, "INVALID_ARGUMENT", "name 'Bad_Name' is invalid" },
        { "/v1/vms", """{"flavor":"m1.tiny"}""", HttpStatusCode.BadRequest, "INVALID_ARGUMENT", "name is required" },
        { "/v1/vms", """{"name":"vm-x","flavor":"m1.tiny","labels":{"bad key!":"v"}}""", HttpStatusCode.BadRequest, "INVALID_ARGUMENT", "label key" },
        { "/v1/flavors", """{"name":"neg","vcpus":-1,"memoryMb":"512","diskGb":"1"}""", HttpStatusCode.BadRequest, "INVALID_ARGUMENT", "vcpus must be between" },
        { "/v1/flavors", """{"name":"neg","vcpus":1,"memoryMb":"-512","diskGb":"1"}""", HttpStatusCode.BadRequest, "INVALID_ARGUMENT", "memory_mb must be between" },
        { "/v1/flavors", """{"name":"neg","vcpus":1,"memoryMb":"512","diskGb":"-1"}""", HttpStatusCode.BadRequest, "INVALID_ARGUMENT", "disk_gb must be between" },
        { "/v1/flavors", """{"name":"huge","vcpus":1,"memoryMb":"99999999999999999999","diskGb":"1"}""", HttpStatusCode.BadRequest, "INVALID_ARGUMENT", "Malformed JSON" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Bad_input_is_refused_with_a_clear_error_and_changes_nothing(string path, string body, HttpStatusCode expectedStatus, string expectedCode, string expectedDetail)
    {
        var before = await CountRowsAsync();

        var (status, problem) = await cloud.Http.PostAsync(path, body);

        Assert.Equal(expectedStatus, status);
        Assert.Equal(expectedCode, problem.Str("code"));
        Assert.Contains(expectedDetail, problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(before, await CountRowsAsync());
    }

    [Fact]
    public async Task A_body_that_is_not_json_is_refused_as_unsupported_media()
    {
        using var content = new StringContent("name=x", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded");
        using var response = await cloud.Http.PostAsync("/v1/vms", content);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Fact]
    public async Task An_oversized_body_is_refused_before_parsing()
    {
        var before = await CountRowsAsync();
        var body = "{\"name\":\"big\",\"flavor\":\"m1.tiny\",\"userData\":\"" + new string('x', 2 * 1024 * 1024) + "\"}";
        var (status, problem) = await cloud.Http.PostAsync("/v1/vms", body);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Equal("INVALID_ARGUMENT", problem.Str("code"));
        Assert.Equal(before, await CountRowsAsync());
    }

    [Fact]
    public async Task A_call_without_a_valid_token_is_unauthenticated()
    {
        using var anonymous = cloud.NewHttpClient();
        anonymous.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "wrong");
        var (status, problem) = await anonymous.GetJsonAsync("/v1/vms");
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("UNAUTHENTICATED", problem.Str("code"));
    }

    [Theory]
    [InlineData("not-a-guid")]
    [InlineData("00000000-0000-0000-0000-000000000000")]
    public async Task An_unknown_vm_id_is_not_found(string id)
    {
        var (status, problem) = await cloud.Http.GetJsonAsync($"/v1/vms/{id}");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("NOT_FOUND", problem.Str("code"));
    }

    private async Task<(long Vms, long Operations, long Flavors, long Allocations)> CountRowsAsync()
        => (await cloud.ScalarAsync("SELECT count(*) FROM vms"),
            await cloud.ScalarAsync("SELECT count(*) FROM operations"),
            await cloud.ScalarAsync("SELECT count(*) FROM flavors"),
            await cloud.ScalarAsync("SELECT count(*) FROM allocations"));
}
