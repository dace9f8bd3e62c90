using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cloud.Grpc.Tests.Support;

/// <summary>A real Kestrel on 127.0.0.1 with a free port, hosting the echo and health services.</summary>
internal sealed class GrpcTestServer : IAsyncDisposable
{
    public const string RestPath = "/rest.v1/items";

    private readonly WebApplication _app;

    private GrpcTestServer(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    public CallProbe Probe => _app.Services.GetRequiredService<CallProbe>();

    public GrpcHealthService Health => _app.Services.GetRequiredService<GrpcHealthService>();

    /// <param name="certificate">When set, TLS with HTTP/1.1 and HTTP/2 (ALPN); otherwise h2c only.</param>
    public static async Task<GrpcTestServer> StartAsync(Action<GrpcServerOptions>? configure = null, X509Certificate2? certificate = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            if (certificate is null)
            {
                listen.Protocols = HttpProtocols.Http2;
            }
            else
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(certificate);
            }
        }));
        builder.Services.AddGrpc(configure);
        builder.Services.AddGrpcHealthChecks();
        builder.Services.AddSingleton<CallProbe>();
        builder.Services.AddScoped<EchoService>();

        var app = builder.Build();
        // A REST route of the same two-segment shape as gRPC paths: the UNIMPLEMENTED fallback
        // must not take it over.
        app.MapPost("/rest.v1/{name}", (string name) => Results.Text($"rest {name}"));
        app.MapPost("/quirks.v1.Quirks/{name}", QuirkyServer.RespondAsync);
        app.MapGrpcService<EchoService>(EchoService.Bind);
        app.MapGrpcHealthService();
        await app.StartAsync();

        var bound = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
        var port = new Uri(bound).Port;
        var scheme = certificate is null ? "http" : "https";
        return new GrpcTestServer(app, new Uri($"{scheme}://127.0.0.1:{port}"));
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(timeout.Token);
        await _app.DisposeAsync();
    }
}

/// <summary>One echo server shared by the tests of a class.</summary>
public sealed class EchoServerFixture : IAsyncLifetime
{
    private GrpcTestServer? _server;

    internal GrpcTestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => _server = await GrpcTestServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
