using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Google.Protobuf;

namespace Cloud.Cli;

/// <summary>Calls the REST API, whose bodies are the compute API's messages in proto3 JSON.</summary>
internal sealed class ApiClient(HttpClient http, ControllerTls tls) : IDisposable
{
    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(true));

    /// <summary>A client of the profile's controller, over TLS checked against <paramref name="caFile"/> (or the system's trust store).</summary>
    public static ApiClient Create(CliProfile profile, string? caFile)
    {
        var tls = ControllerTls.For(profile.Url, caFile);
        var http = new HttpClient(tls.NewHandler()) { BaseAddress = new Uri(profile.Url.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(30) };
        if (!string.IsNullOrEmpty(profile.Token))
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", profile.Token);
        }
        return new ApiClient(http, tls);
    }

    public Task<T> GetAsync<T>(string path, CancellationToken cancellationToken) where T : IMessage<T>, new()
        => SendAsync<T>(new HttpRequestMessage(HttpMethod.Get, path), cancellationToken);

    public Task<T> PostAsync<T>(string path, IMessage body, string? idempotencyKey, CancellationToken cancellationToken) where T : IMessage<T>, new()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(JsonFormatter.Default.Format(body), Encoding.UTF8, "application/json"),
        };
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }
        return SendAsync<T>(request, cancellationToken);
    }

    public Task<T> PutAsync<T>(string path, IMessage body, CancellationToken cancellationToken) where T : IMessage<T>, new()
        => SendAsync<T>(new HttpRequestMessage(HttpMethod.Put, path)
        {
            Content = new StringContent(JsonFormatter.Default.Format(body), Encoding.UTF8, "application/json"),
        }, cancellationToken);

    public Task<T> DeleteAsync<T>(string path, CancellationToken cancellationToken) where T : IMessage<T>, new()
        => SendAsync<T>(new HttpRequestMessage(HttpMethod.Delete, path), cancellationToken);

    /// <summary>
    /// PUT of a file as application/octet-stream, streamed from disk (never held in memory), with
    /// no overall timeout: an image upload takes as long as the file is large.
    /// </summary>
    public async Task<T> UploadFileAsync<T>(string path, string file, Action<long> progress, CancellationToken cancellationToken) where T : IMessage<T>, new()
    {
        using var uploading = new HttpClient(tls.NewHandler()) { BaseAddress = http.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
        uploading.DefaultRequestHeaders.Authorization = http.DefaultRequestHeaders.Authorization;
        await using var stream = new ProgressStream(File.OpenRead(file), progress);
        using var content = new StreamContent(stream, 1 << 16);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.ContentLength = stream.Length;
        using var request = new HttpRequestMessage(HttpMethod.Put, path) { Content = content };
        return await new ApiClient(uploading, tls).SendAsync<T>(request, cancellationToken);
    }

    /// <summary>The data lines of a Server-Sent Events stream, parsed, until it ends or is cancelled.</summary>
    public async IAsyncEnumerable<T> StreamAsync<T>(string path, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
        where T : IMessage<T>, new()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        using var streaming = new HttpClient(tls.NewHandler()) { BaseAddress = http.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
        streaming.DefaultRequestHeaders.Authorization = http.DefaultRequestHeaders.Authorization;
        HttpResponseMessage response;
        try
        {
            response = await streaming.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new CliException(tls.DescribeFailure(e));
        }
        using var _ = response;
        if (!response.IsSuccessStatusCode)
        {
            throw new CliException(DescribeProblem(response, await response.Content.ReadAsStringAsync(cancellationToken)));
        }
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                yield return Parser.Parse<T>(line["data: ".Length..]);
            }
        }
    }

    private async Task<T> SendAsync<T>(HttpRequestMessage request, CancellationToken cancellationToken) where T : IMessage<T>, new()
    {
        using (request)
        {
            HttpResponseMessage response;
            try
            {
                response = await http.SendAsync(request, cancellationToken);
            }
            catch (HttpRequestException e)
            {
                throw new CliException(tls.DescribeFailure(e));
            }
            using (response)
            {
                var text = await response.Content.ReadAsStringAsync(cancellationToken);
                if (!response.IsSuccessStatusCode)
                {
                    throw new CliException(DescribeProblem(response, text));
                }
                return Parser.Parse<T>(text);
            }
        }
    }

    /// <summary>"NOT_FOUND: VM x does not exist" from a problem-details body.</summary>
    private static string DescribeProblem(HttpResponseMessage response, string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            var code = root.TryGetProperty("code", out var c) ? c.GetString() : null;
            var detail = root.TryGetProperty("detail", out var d) ? d.GetString() : null;
            return $"{code ?? ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture)}: {detail ?? response.ReasonPhrase}";
        }
        catch (JsonException)
        {
            return $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}";
        }
    }

    public void Dispose() => http.Dispose();

    /// <summary>Reports how many bytes were read so far.</summary>
    private sealed class ProgressStream(FileStream inner, Action<long> progress) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Report(inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            => Report(await inner.ReadAsync(buffer, cancellationToken));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }
            base.Dispose(disposing);
        }

        private int Report(int read)
        {
            progress(inner.Position);
            return read;
        }
    }
}
