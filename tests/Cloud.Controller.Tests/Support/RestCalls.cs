using System.Net;
using System.Text;
using System.Text.Json;

namespace Cloud.Controller.Tests.Support;

/// <summary>REST helpers: JSON in, parsed JSON out, and waiting for operations.</summary>
internal static class RestCalls
{
    public static async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(this HttpClient http, HttpMethod method, string path, string? json = null, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var body = text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        return (response.StatusCode, body);
    }

    public static Task<(HttpStatusCode Status, JsonElement Body)> PostAsync(this HttpClient http, string path, string json, string? idempotencyKey = null)
        => http.SendAsync(HttpMethod.Post, path, json, idempotencyKey);

    public static Task<(HttpStatusCode Status, JsonElement Body)> GetJsonAsync(this HttpClient http, string path)
        => http.SendAsync(HttpMethod.Get, path);

    /// <summary>Polls an operation until SUCCEEDED or FAILED.</summary>
    public static async Task<JsonElement> WaitForOperationAsync(this HttpClient http, string operationId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var (status, operation) = await http.GetJsonAsync($"/v1/operations/{operationId}");
            Assert.Equal(HttpStatusCode.OK, status);
            if (operation.GetProperty("state").GetString() is "SUCCEEDED" or "FAILED")
            {
                return operation;
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Operation {operationId} is still {operation.GetProperty("state")}.");
            }
            await Task.Delay(50);
        }
    }

    public static string Str(this JsonElement element, string property) => element.GetProperty(property).GetString()!;
}
