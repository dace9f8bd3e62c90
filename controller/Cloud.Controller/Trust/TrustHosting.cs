using System.Net;
using System.Security.Authentication;
using Cloud.Controller.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Trust;

/// <summary>TLS on the controller's three ports, and which services each one serves.</summary>
internal static class TrustHosting
{
    /// <summary>The node services' gRPC package: served on the node port, and only there.</summary>
    private const string NodeServicesPrefix = "/cloud.node.v1.";

    public static IServiceCollection AddCloudTrust(this IServiceCollection services)
    {
        services.AddOptions<TrustOptions>().BindConfiguration(TrustOptions.SectionName)
            .Validate(o => o.CertificateLifetime >= TimeSpan.FromMinutes(1) && o.CertificateLifetime <= TimeSpan.FromDays(30),
                "Trust:CertificateLifetime must be between 1 minute and 30 days.")
            .Validate(o => o.JoinTokenLifetime >= TimeSpan.FromMinutes(1) && o.JoinTokenLifetime <= TimeSpan.FromDays(7),
                "Trust:JoinTokenLifetime must be between 1 minute and 7 days.")
            .Validate(o => (o.ApiCertificateFile is { Length: > 0 }) == (o.ApiKeyFile is { Length: > 0 }),
                "Trust:ApiCertificateFile and Trust:ApiKeyFile go together.")
            .ValidateOnStart();
        services.AddSingleton<ControllerCertificates>();
        services.AddSingleton<RevokedCertificates>();
        services.AddSingleton<JoinTokens>();
        services.AddSingleton<NodeCertificateIssuer>();
        services.AddSingleton<PeerGrants>();
        return services;
    }

    /// <summary>
    /// The public REST and gRPC ports serve TLS with the API certificate (plaintext only when
    /// asked for, on loopback); the node port asks every client for a certificate, refuses the
    /// handshake of one that does not chain to the cloud CA, and lets a client without one reach
    /// NodeTrust/Join only (the policies refuse it everything else).
    /// </summary>
    public static void ListenWithTls(this KestrelServerOptions kestrel, ControllerOptions controller, TrustOptions trust,
        Func<string, string, IPEndPoint> parse)
    {
        var rest = parse(controller.RestListen, "Controller:RestListen");
        var grpc = parse(controller.GrpcListen, "Controller:GrpcListen");
        var node = parse(controller.NodeListen, "Controller:NodeListen");
        if (trust.PlaintextApi && !(IPAddress.IsLoopback(rest.Address) && IPAddress.IsLoopback(grpc.Address)))
        {
            throw new OptionsValidationException(TrustOptions.SectionName, typeof(TrustOptions),
                ["Trust:PlaintextApi is allowed only when Controller:RestListen and Controller:GrpcListen are loopback addresses."]);
        }
        var certificates = kestrel.ApplicationServices.GetRequiredService<ControllerCertificates>();
        var api = new HttpsConnectionAdapterOptions
        {
            ServerCertificateSelector = (_, _) => certificates.Api,
            SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        };
        kestrel.Listen(rest, o =>
        {
            o.Protocols = HttpProtocols.Http1AndHttp2;
            if (!trust.PlaintextApi)
            {
                o.UseHttps(api);
            }
        });
        kestrel.Listen(grpc, o =>
        {
            o.Protocols = HttpProtocols.Http2;
            if (!trust.PlaintextApi)
            {
                o.UseHttps(api);
            }
        });
        kestrel.Listen(node, o =>
        {
            o.Protocols = HttpProtocols.Http2;
            o.UseHttps(new HttpsConnectionAdapterOptions
            {
                ServerCertificateSelector = (_, _) => certificates.Own,
                SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                ClientCertificateMode = ClientCertificateMode.AllowCertificate,
                ClientCertificateValidation = (certificate, _, _) => certificates.Verifies(certificate),
            });
        });
    }

    /// <summary>
    /// Node services answer on the node port only, and the node port serves nothing else but
    /// health: by the port the connection came in on, which a client cannot choose by a header.
    /// </summary>
    public static void UsePortSeparation(this WebApplication app)
    {
        var nodePort = IPEndPoint.Parse(app.Services.GetRequiredService<IOptions<ControllerOptions>>().Value.NodeListen).Port;
        app.Use((context, next) =>
        {
            var onNodePort = context.Connection.LocalPort == nodePort;
            var path = context.Request.Path.Value ?? "";
            var nodeService = path.StartsWith(NodeServicesPrefix, StringComparison.Ordinal);
            var health = path.StartsWith("/grpc.health.v1.", StringComparison.Ordinal);
            if (onNodePort == nodeService || health)
            {
                return next(context);
            }
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });
    }
}
