using System.Diagnostics.CodeAnalysis;
using System.Net;
using Cloud.Agent.Hypervisor;
using Cloud.Agent.Hypervisor.Fake;
using Cloud.Agent.Identity;
using Cloud.Agent.Qemu;
using Cloud.Agent.Registration;
using Cloud.Agent.Rpc;
using Cloud.Contracts.Agent.V1;
using Cloud.Contracts.Node.V1;
using Cloud.Contracts.Trust;
using System.Security.Authentication;
using Grpc.Core;
using Cloud.ServiceDefaults;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Options;

namespace Cloud.Agent;

/// <summary>Registration of the agent's parts, so that Program.cs stays a few lines.</summary>
internal static class AgentExtensions
{
    public static WebApplicationBuilder AddAgent(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<AgentOptions>().BindConfiguration(AgentOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AgentOptions>, AgentOptionsValidator>();
        services.AddSingleton<IValidateOptions<AgentOptions>, AgentOptionsRules>();
        var agent = builder.Configuration.GetSection(AgentOptions.SectionName).Get<AgentOptions>() ?? new AgentOptions();

        // Mutual TLS only: the handshake refuses a client without a certificate from the cloud
        // CA; CallerAuthorization then decides by the identity in it.
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            var endpoint = ParseListen(agent.Listen);
            var identity = kestrel.ApplicationServices.GetRequiredService<NodeIdentity>();
            kestrel.Listen(endpoint, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                listen.UseHttps(new HttpsConnectionAdapterOptions
                {
                    ServerCertificateSelector = (_, _) => identity.Certificate,
                    SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                    ClientCertificateMode = ClientCertificateMode.RequireCertificate,
                    ClientCertificateValidation = (certificate, _, _) => identity.Verifies(certificate),
                });
            });
        });

        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<NodeIdentity>();
        services.AddCloudGrpc(grpc => grpc.Interceptors.Add<CallerAuthorization>())
            .AddCheck<HypervisorHealthCheck>("hypervisor", tags: [GrpcHostingExtensions.Ready])
            .AddCheck<CertificateHealthCheck>("certificate", tags: [GrpcHostingExtensions.Ready]);
        services.AddSingleton<IRpcErrorMapper, HypervisorErrorMapper>();
        services.AddCloudTelemetry(builder.Configuration, "cloud-agent");

        if (agent.Backend == "fake")
        {
            services.AddOptions<FakeHypervisorOptions>().BindConfiguration(FakeHypervisorOptions.SectionName).ValidateOnStart();
            services.AddSingleton<IValidateOptions<FakeHypervisorOptions>, FakeHypervisorOptionsValidator>();
            services.AddSingleton<IHypervisor>(sp => new FakeHypervisor(
                sp.GetRequiredService<IOptions<FakeHypervisorOptions>>(), sp.GetRequiredService<TimeProvider>(), agent.NodeName));
            services.AddSingleton<IImageTarget, FakeImageTarget>();
        }
        else
        {
            // QEMU's migration TLS uses the node's own folder (qemu.pem, qemu.key, ca.pem) unless told otherwise.
            builder.Configuration["Agent:Qemu:TlsDirectory"] ??= Path.GetFullPath(agent.TlsDirectory);
            services.AddQemuBackend(builder.Configuration);
            services.AddSingleton<IImageTarget, QemuImageTarget>();
        }

        // Clients of the controller's node port from the client factory: one place for the
        // address and for mutual TLS, which accepts only the controller's certificate.
        AddControllerClient<NodeRegistry.NodeRegistryClient>(services, agent);
        AddControllerClient<ImageSource.ImageSourceClient>(services, agent);
        // First: the agent has its certificate before anything else starts, the listener included.
        services.AddSingleton<CertificateRenewal>();
        services.AddHostedService(sp => sp.GetRequiredService<CertificateRenewal>());
        services.AddHostedService<RegistrationLoop>();
        services.AddSingleton<IImageSourceReader, GrpcImageSourceReader>();
        services.AddSingleton<ImagePuller>();
        services.AddSingleton<PeerAgents>();
        services.AddSingleton<SnapshotPuller>();
        return builder;
    }

    private static void AddControllerClient<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TClient>(IServiceCollection services, AgentOptions agent)
        where TClient : class
        => services.AddGrpcClient<TClient>(o => o.Address = new Uri(agent.ControllerUrl))
            .ConfigurePrimaryHttpMessageHandler(sp => sp.GetRequiredService<NodeIdentity>().NewHandler(CloudIdentity.IsController));

    public static WebApplication MapAgent(this WebApplication app)
    {
        app.UseCloudMetricsListener();
        app.MapGrpcService<NodeAgentService>();
        // The listener speaks HTTP/2 only: probes use grpc.health.v1 ("liveness", "readiness").
        app.MapCloudGrpc(httpProbes: false);
        return app;
    }

    /// <summary>"127.0.0.2:7070" or "[::1]:7070"; a host name is refused, so the bind address is never a guess.</summary>
    internal static IPEndPoint ParseListen(string listen)
        => IPEndPoint.TryParse(listen, out var endpoint) && endpoint.Port != 0
            ? endpoint
            : throw new OptionsValidationException(AgentOptions.SectionName, typeof(AgentOptions), [$"Agent:Listen '{listen}' must be an IP address and port, such as 127.0.0.2:7070."]);
}
