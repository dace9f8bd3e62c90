using System.Net;
using Cloud.Controller.Api;
using Cloud.Controller.Audit;
using Cloud.Controller.TenantConsole;
using Cloud.Controller.Auth;
using Cloud.Controller.Catalog;
using Cloud.Controller.Data;
using Cloud.Controller.Images;
using Cloud.Controller.Limits;
using Cloud.Controller.Nodes;
using Cloud.Controller.Operations;
using Cloud.Controller.Placement;
using Cloud.Controller.Privacy;
using Cloud.Controller.Scheduling;
using Cloud.Controller.Snapshots;
using Cloud.Controller.Trust;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Cloud.Contracts.Node.V1;
using Cloud.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Hosting;

/// <summary>Registration of the controller's parts, so that Program.cs stays a few lines.</summary>
internal static class ControllerExtensions
{
    public static WebApplicationBuilder AddController(this WebApplicationBuilder builder, string connectionString)
    {
        var services = builder.Services;
        var controller = builder.Configuration.GetSection(ControllerOptions.SectionName).Get<ControllerOptions>() ?? new ControllerOptions();
        services.AddOptions<ControllerOptions>().BindConfiguration(ControllerOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.SectionName);
        services.AddOptions<SchedulerOptions>().BindConfiguration(SchedulerOptions.SectionName)
            .Validate(o => o.Policy is "spread" or "pack", "Scheduler:Policy must be 'spread' or 'pack'.")
            .Validate(o => o.MaxClaimAttempts is >= 1 and <= 100, "Scheduler:MaxClaimAttempts must be between 1 and 100.")
            .ValidateOnStart();
        services.AddOptions<OperationOptions>().BindConfiguration(OperationOptions.SectionName)
            .Validate(o => o.Concurrency is >= 1 and <= 1024, "Operations:Concurrency must be between 1 and 1024.")
            .Validate(o => o.Lease > TimeSpan.FromSeconds(5), "Operations:Lease must be longer than 5 seconds.")
            .ValidateOnStart();
        services.AddOptions<NodeOptions>().BindConfiguration(NodeOptions.SectionName)
            .Validate(o => o.DownAfter > o.HeartbeatInterval, "Nodes:DownAfter must be longer than Nodes:HeartbeatInterval.")
            .ValidateOnStart();

        var trust = builder.Configuration.GetSection(TrustOptions.SectionName).Get<TrustOptions>() ?? new TrustOptions();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.ListenWithTls(controller, trust, ParseListen);
            // Bodies: JSON endpoints refuse more than 1 MiB themselves (ProtoJson), by Content-Length
            // before reading; the image upload raises this limit for its own request.
            kestrel.Limits.MaxRequestBodySize = 8 * 1024 * 1024;
            // Headers: Kestrel's defaults, stated so that they are a decision (431 past them).
            kestrel.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            kestrel.Limits.MaxRequestHeaderCount = 100;
        });

        services.AddSingleton(TimeProvider.System);
        services.AddControllerTelemetry(builder.Configuration);
        services.AddCloudGrpc().AddCheck<LedgerHealthCheck>("ledger", tags: [GrpcHostingExtensions.Ready]);
        services.AddSingleton<IRpcErrorMapper, ApiErrorMapper>();
        services.AddCloudTrust();
        services.AddCloudAuthentication();
        services.AddAbuseLimits();
        services.AddProblemDetails();
        services.AddLedgerDatabase(connectionString);

        services.AddSingleton<AgentConnections>();
        services.AddSingleton<INodeFilter, NodeUpFilter>();
        services.AddSingleton<INodeFilter, ResourceFitFilter>();
        services.AddSingleton<Scheduler>();
        services.AddScheduling();
        services.AddPlacementApi();
        services.AddSingleton<OperationQueue>();
        services.AddVmSpecs();
        services.AddSingleton<AgentVmCreation>();
        services.AddSingleton<IOperationHandler, CreateVmHandler>();
        services.AddSingleton<IOperationHandler, CreateVmsHandler>();
        services.AddSingleton<IOperationHandler, DeleteVmHandler>();
        services.AddTenantSelfService();
        services.AddTenantPrivacy();
        services.AddImages();
        services.AddSingleton<VmService>();
        services.AddSingleton<ConsoleOutputService>();
        services.AddSingleton<CatalogService>();
        services.AddSingleton<NodeQueries>();
        services.AddSingleton<OperationQueries>();
        services.AddHostedService<OperationRunner>();
        services.AddHostedService<NodeMonitor>();
        services.AddSingleton<HeartbeatMetrics>();
        services.AddSnapshotAudit();
        services.AddAuditTrail();
        return builder;
    }

    public static WebApplication MapController(this WebApplication app)
    {
        app.UseCloudMetricsListener();
        // Outside everything that can refuse or fail a call, so that the trail sees its final status.
        app.UseAuditTrail();
        app.UseExceptionHandler();
        app.UsePortSeparation();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRateLimiter();
        app.MapRestApi();
        app.MapPlacementApi();
        app.MapOpenApi();
        app.MapGrpcService<ComputeService>().RequirePerTokenRateLimit();
        app.MapGrpcService<NodeRegistryService>();
        app.MapGrpcService<ImageSourceService>();
        app.MapGrpcService<NodeTrustService>();
        app.MapCloudGrpc(httpProbes: true);
        app.MapConsole();
        return app;
    }

    private static IPEndPoint ParseListen(string listen, string setting)
        => IPEndPoint.TryParse(listen, out var endpoint) && endpoint.Port != 0
            ? endpoint
            : throw new OptionsValidationException(setting, typeof(ControllerOptions), [$"{setting} '{listen}' must be an IP address and port, such as 127.0.0.1:8080."]);
}
