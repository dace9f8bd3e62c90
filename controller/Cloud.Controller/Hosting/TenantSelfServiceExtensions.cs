using Microsoft.Extensions.Options;
using Cloud.Controller.Operations;
using Cloud.Controller.Tenants;
using Cloud.Controller.Vms;

namespace Cloud.Controller.Hosting;

/// <summary>Registration of tenants, tokens, quotas, VM verbs, snapshots and the watch.</summary>
internal static class TenantSelfServiceExtensions
{
    public static IServiceCollection AddTenantSelfService(this IServiceCollection services)
    {
        // The REST endpoints' OpenAPI document, served at /openapi/v1.json.
        services.AddOpenApi();
        services.AddOptions<IdempotencyOptions>().BindConfiguration(IdempotencyOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<IdempotencyOptions>, IdempotencyOptionsValidation>();
        services.AddSingleton<IdempotentCreates>();
        services.AddSingleton<TenantService>();
        services.AddSingleton<TenantDeletions>();
        services.AddSingleton<IOperationHandler, DeleteTenantHandler>();
        services.AddSingleton<OperationStarter>();
        services.AddSingleton<SnapshotService>();
        services.AddSingleton<VmWatch>();
        services.AddSingleton<VmHandlerSupport>();
        services.AddSingleton<LiveMigration>();
        services.AddSingleton<MigrationTargets>();
        foreach (var kind in (string[])[OperationKinds.VmStart, OperationKinds.VmStop, OperationKinds.VmReboot])
        {
            services.AddSingleton<IOperationHandler>(sp => new PowerVerbHandler(kind, sp.GetRequiredService<VmHandlerSupport>()));
        }
        services.AddSingleton<IOperationHandler, ResizeVmHandler>();
        services.AddSingleton<IOperationHandler, MigrateVmHandler>();
        services.AddSingleton<IOperationHandler, Nodes.DrainNodeHandler>();
        services.AddSingleton<SnapshotExports>();
        services.AddSingleton<IOperationHandler, CreateFromSnapshotHandler>();
        services.AddSingleton<IOperationHandler, SnapshotCreateHandler>();
        services.AddSingleton<IOperationHandler, SnapshotRestoreHandler>();
        services.AddSingleton<IOperationHandler, SnapshotDeleteHandler>();
        return services;
    }
}
