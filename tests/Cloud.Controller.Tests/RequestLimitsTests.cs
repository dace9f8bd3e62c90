using System.Net;
using System.Net.Sockets;
using System.Text;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>Body and header size limits, checked before a request is read.</summary>
[Collection(CloudCollection.Name)]
public sealed class RequestLimitsTests(CloudFixture cloud)
{
    [Fact]
    public async Task A_100_MB_body_to_a_json_endpoint_is_refused_with_413_before_it_is_read()
    {
        using var socket = new TcpClient();
        await socket.ConnectAsync(cloud.RestUrl.Host, cloud.RestUrl.Port);
        using var stream = new System.Net.Security.SslStream(socket.GetStream());
        await stream.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
        {
            TargetHost = cloud.RestUrl.Host,
            ApplicationProtocols = [System.Net.Security.SslApplicationProtocol.Http11],
            RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is System.Security.Cryptography.X509Certificates.X509Certificate2 presented
                && Cloud.Contracts.Trust.CertificateAuthority.Verifies(Cloud.Testing.TestTrust.Shared.Authority.Certificate, presented, DateTime.UtcNow),
        });
        const string start = "{\"name\": \"huge\", \"flavor\": \"";
        var head = $"POST /v1/vms HTTP/1.1\r\nHost: {cloud.RestUrl.Authority}\r\nAuthorization: Bearer {CloudFixture.OperatorToken}\r\n"
            + $"Content-Type: application/json\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n{start}";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));

        // Only the head and a few bytes of the body were sent: an answer at all shows the server
        // did not wait for the rest (a server reading the body would wait past the bound below).
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var answer = new StringBuilder();
        var buffer = new byte[8192];
        while (!answer.ToString().Contains("\r\n\r\n", StringComparison.Ordinal) || !answer.ToString().Contains('}', StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(buffer, timeout.Token);
            if (read == 0)
            {
                break;
            }
            answer.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }
        var text = answer.ToString();
        Assert.StartsWith("HTTP/1.1 413", text, StringComparison.Ordinal);
        Assert.Contains("application/problem+json", text, StringComparison.Ordinal);
        Assert.Contains("\"code\":\"INVALID_ARGUMENT\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_header_block_over_32_KiB_gets_431()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/vms");
        request.Headers.Add("X-Padding", new string('a', 40 * 1024));
        using var response = await cloud.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task More_than_100_headers_get_431()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/vms");
        for (var i = 0; i < 120; i++)
        {
            request.Headers.Add($"X-Padding-{i}", "a");
        }
        using var response = await cloud.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
    }
}
