using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cloud.Grpc.Tests.Echo;
using Cloud.Grpc.Tests.Support;

namespace Cloud.Grpc.Tests;

/// <summary>gRPC over TLS: Kestrel with HTTP/1.1 and HTTP/2 on one endpoint, h2 chosen by ALPN.</summary>
public sealed class TlsTests : IAsyncLifetime
{
    private X509Certificate2 _certificate = null!;
    private GrpcTestServer _server = null!;

    public async Task InitializeAsync()
    {
        _certificate = CreateSelfSigned();
        _server = await GrpcTestServer.StartAsync(certificate: _certificate);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _certificate.Dispose();
    }

    [Fact]
    public async Task UnaryAndStreaming_OverTls_WithTheCertificateTrusted()
    {
        using var channel = GrpcChannel.ForAddress(_server.Address, new GrpcChannelOptions { HttpHandler = TrustingHandler(), DisposeHttpClient = true });
        Assert.Equal("https", channel.Address.Scheme);

        var response = await channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Message = "secure" }, default);
        Assert.Equal("secure", response.Message);

        using var call = channel.ServerStreaming(EchoMethods.Stream, new EchoRequest { Count = 3 }, default);
        var count = 0;
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            count++;
        }
        Assert.Equal(3, count);
    }

    [Fact]
    public async Task UntrustedCertificate_IsUnavailable()
    {
        using var channel = GrpcChannel.ForAddress(_server.Address);
        var ex = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(EchoMethods.Unary, new EchoRequest(), default));
        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
    }

    [Fact]
    public async Task Http11Request_IsRefusedWith426()
    {
        // The endpoint also speaks HTTP/1.1 (for REST); gRPC there would lose its trailers.
        using var http = new HttpClient(TrustingHandler());
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_server.Address, "/echo.v1.Echo/Unary"))
        {
            Version = System.Net.HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent([0, 0, 0, 0, 0]),
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        using var response = await http.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.UpgradeRequired, response.StatusCode);
        Assert.Equal("13", response.Headers.GetValues("grpc-status").Single());
    }

    private SocketsHttpHandler TrustingHandler()
    {
        var thumbprint = _certificate.GetCertHashString(HashAlgorithmName.SHA256);
        return new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                // Trust exactly the test's own certificate, nothing else.
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                    certificate is not null && certificate.GetCertHashString(HashAlgorithmName.SHA256) == thumbprint,
            },
        };
    }

    private static X509Certificate2 CreateSelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        // A round trip through PKCS#12 gives Kestrel a certificate whose key it can use for TLS.
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }
}
