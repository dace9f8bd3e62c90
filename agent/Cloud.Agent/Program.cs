using Cloud.Agent;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddAgent();

var app = builder.Build();
app.MapAgent();
app.Run();
