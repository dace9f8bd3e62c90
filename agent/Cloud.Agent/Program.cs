using Cloud.Agent;

var builder = WebApplication.CreateBuilder(args);
builder.AddAgent();

var app = builder.Build();
app.MapAgent();
app.Run();
