using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;

namespace Cloud.Controller.Tests.Support;

/// <summary>Image records and uploads through the REST API.</summary>
internal static class ImageUploads
{
    public static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>Random bytes that do not start like a qcow2: a raw image's content.</summary>
    public static byte[] RawBytes(int length)
    {
        var bytes = RandomNumberGenerator.GetBytes(length);
        bytes[0] = 0;
        return bytes;
    }

    /// <summary>Creates a QUEUED image record; its JSON.</summary>
    public static async Task<JsonElement> CreateImageAsync(this HttpClient http, string name, string format, string sha256, long minDiskGb = 0, string visibility = "private")
    {
        var (status, image) = await http.PostAsync("/v1/images", $$"""{"name":"{{name}}","format":"{{format}}","sha256":"{{sha256}}","minDiskGb":"{{minDiskGb}}","visibility":"{{visibility}}"}""");
        Assert.True(status == HttpStatusCode.Created, image.ToString());
        return image;
    }

    /// <summary>PUT /v1/images/{id}/file; <paramref name="chunked"/> sends no Content-Length.</summary>
    public static async Task<(HttpStatusCode Status, JsonElement Body)> UploadAsync(this HttpClient http, string id, byte[] bytes, bool chunked = false)
    {
        using var content = chunked ? (HttpContent)new StreamContent(new NoLengthStream(bytes)) : new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await http.PutAsync($"/v1/images/{id}/file", content);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>Creates an image and uploads <paramref name="bytes"/>; the ACTIVE image's id.</summary>
    public static async Task<string> UploadedImageAsync(this HttpClient http, string name, string format, byte[] bytes, long minDiskGb = 0, string visibility = "private")
    {
        var image = await http.CreateImageAsync(name, format, Sha256(bytes), minDiskGb, visibility);
        var (status, uploaded) = await http.UploadAsync(image.Str("id"), bytes);
        Assert.True(status == HttpStatusCode.OK, uploaded.ToString());
        Assert.Equal("ACTIVE", uploaded.Str("state"));
        return image.Str("id");
    }

    /// <summary>Creates a VM (m1.tiny) from an image and waits for it to run; its id.</summary>
    public static async Task<string> CreateRunningVmFromImageAsync(this HttpClient http, string imageId, string name = "from-image")
    {
        var (status, operation) = await http.PostAsync("/v1/vms", $$"""{"name":"{{name}}","flavor":"m1.tiny","image":"{{imageId}}"}""");
        Assert.True(status == HttpStatusCode.Accepted, operation.ToString());
        var done = await http.WaitForOperationAsync(operation.Str("id"));
        Assert.True(done.Str("state") == "SUCCEEDED", done.ToString());
        return operation.Str("targetId");
    }

    /// <summary>A stream whose length is unknown, so that HttpClient sends the body chunked.</summary>
    private sealed class NoLengthStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }
}
