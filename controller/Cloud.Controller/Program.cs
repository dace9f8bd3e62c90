using Cloud.Controller.Data;
using Cloud.Controller.Hosting;

var builder = WebApplication.CreateBuilder(args);
using var loggers = LoggerFactory.Create(logging => logging.AddConfiguration(builder.Configuration.GetSection("Logging")).AddConsole());
var startupLog = loggers.CreateLogger("Cloud.Controller.Startup");

if (args is ["migrate", ..])
{
    var connectionString = builder.Configuration.GetConnectionString("Ledger")
        ?? throw new InvalidOperationException("migrate needs ConnectionStrings:Ledger (or ConnectionStrings__Ledger).");
    await DatabaseMigrator.MigrateAsync(connectionString, CancellationToken.None);
    startupLog.LogInformation("Migrations applied.");
    return;
}

await using var database = await DatabaseStartup.PrepareAsync(builder.Configuration, startupLog, CancellationToken.None);
builder.AddController(database.ConnectionString);

var app = builder.Build();
app.MapController();
await app.RunAsync();
