using System.Collections.Frozen;

namespace Cloud.Controller.TenantConsole;

/// <summary>
/// The tenant console at /console: one static page, its script and its style, embedded in the
/// assembly. The page holds no secret and no data; it calls /v1 with the token its user enters,
/// so it can do exactly what that token can through cloudctl. The content security policy lets
/// it load only its own script and style and talk only to this origin.
/// </summary>
internal static class ConsolePage
{
    private const string Policy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

    private static readonly FrozenDictionary<string, (byte[] Content, string Type)> Files = new Dictionary<string, (byte[], string)>
    {
        ["index.html"] = (Read("index.html"), "text/html; charset=utf-8"),
        ["app.js"] = (Read("app.js"), "text/javascript; charset=utf-8"),
        ["app.css"] = (Read("app.css"), "text/css; charset=utf-8"),
    }.ToFrozenDictionary(StringComparer.Ordinal);

    public static IEndpointRouteBuilder MapConsole(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => Results.Redirect("/console"));
        app.MapGet("/console", (HttpContext http) => Serve(http, "index.html"));
        app.MapGet("/console/{file}", (HttpContext http, string file) => Serve(http, file));
        return app;
    }

    private static IResult Serve(HttpContext http, string file)
    {
        if (!Files.TryGetValue(file, out var entry))
        {
            return Results.NotFound();
        }
        var headers = http.Response.Headers;
        headers.ContentSecurityPolicy = Policy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.CacheControl = "no-cache";
        return Results.Bytes(entry.Content, entry.Type);
    }

    private static byte[] Read(string name)
    {
        using var stream = typeof(ConsolePage).Assembly.GetManifestResourceStream($"console/{name}")
            ?? throw new InvalidOperationException($"The console's {name} is not embedded in the controller.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
