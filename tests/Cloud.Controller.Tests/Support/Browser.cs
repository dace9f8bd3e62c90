using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Cloud.Controller.Tests.Support;

/// <summary>
/// Headless Chromium driven through ChromeDriver's W3C WebDriver protocol (JSON over HTTP on
/// loopback): a real browser, so that the page's script, its requests and its content security
/// policy are what a user's browser would run. The driver and the browser's profile live as long
/// as this object.
/// </summary>
internal sealed class Browser : IAsyncDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private readonly Process _driver;
    private readonly HttpClient _http;
    private readonly string _profile;
    private readonly string _session;

    private Browser(Process driver, HttpClient http, string profile, string session)
    {
        _driver = driver;
        _http = http;
        _profile = profile;
        _session = session;
    }

    /// <summary>
    /// A browser that trusts exactly <paramref name="serverCertificate"/> (by its public key), as a
    /// user who installed the cloud's CA would trust the console's certificate.
    /// </summary>
    public static async Task<Browser> StartAsync(System.Security.Cryptography.X509Certificates.X509Certificate2 serverCertificate)
    {
        var pin = Convert.ToBase64String(System.Security.Cryptography.SHA256.HashData(serverCertificate.PublicKey.ExportSubjectPublicKeyInfo()));
        var port = FreePort();
        var driver = Process.Start(new ProcessStartInfo("/usr/bin/chromedriver", [$"--port={port}"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("chromedriver did not start.");
        // Read and dropped, so that a chatty driver never blocks on a full pipe.
        driver.OutputDataReceived += (_, _) => { };
        driver.ErrorDataReceived += (_, _) => { };
        driver.BeginOutputReadLine();
        driver.BeginErrorReadLine();
        var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(120) };
        var profile = Directory.CreateTempSubdirectory("cloud-browser-").FullName;
        try
        {
            await WaitForDriverAsync(http);
            var capabilities = new JsonObject
            {
                ["capabilities"] = new JsonObject
                {
                    ["alwaysMatch"] = new JsonObject
                    {
                        ["browserName"] = "chrome",
                        ["goog:chromeOptions"] = new JsonObject
                        {
                            ["binary"] = "/usr/bin/chromium",
                            // Headless, as root, and with nothing that reaches beyond this machine.
                            ["args"] = new JsonArray("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                "--disable-default-apps", "--disable-extensions", $"--user-data-dir={profile}", $"--ignore-certificate-errors-spki-list={pin}"),
                        },
                    },
                },
            };
            var created = await SendAsync(http, HttpMethod.Post, "session", capabilities);
            return new Browser(driver, http, profile, created!["sessionId"]!.GetValue<string>());
        }
        catch
        {
            driver.Kill(entireProcessTree: true);
            http.Dispose();
            Directory.Delete(profile, recursive: true);
            throw;
        }
    }

    public Task NavigateAsync(Uri url) => CommandAsync(HttpMethod.Post, "url", new JsonObject { ["url"] = url.ToString() });

    public async Task TypeAsync(string css, string text)
    {
        var element = await FindAsync(css);
        await CommandAsync(HttpMethod.Post, $"element/{element}/clear", new JsonObject());
        await CommandAsync(HttpMethod.Post, $"element/{element}/value", new JsonObject { ["text"] = text });
    }

    public async Task ClickAsync(string css)
        => await CommandAsync(HttpMethod.Post, $"element/{await FindAsync(css)}/click", new JsonObject());

    /// <summary>Accepts the page's confirm() once it is showing.</summary>
    public Task AcceptDialogAsync() => RetryAsync(async () =>
    {
        await CommandAsync(HttpMethod.Post, "alert/accept", new JsonObject());
        return true;
    });

    /// <summary>Runs <paramref name="script"/> (a function body; arguments in <c>arguments</c>) in the page and answers its result.</summary>
    public async Task<JsonNode?> EvaluateAsync(string script, params string[] arguments)
        => await CommandAsync(HttpMethod.Post, "execute/sync", new JsonObject
        {
            ["script"] = script,
            ["args"] = new JsonArray([.. arguments.Select(a => (JsonNode?)JsonValue.Create(a))]),
        });

    /// <summary>The text of the first element matching <paramref name="css"/>, or null when there is none.</summary>
    public async Task<string?> TextAsync(string css)
        => (await EvaluateAsync("const e = document.querySelector(arguments[0]); return e === null ? null : e.textContent;", css))?.GetValue<string>();

    /// <summary>Waits until <paramref name="css"/>'s text satisfies <paramref name="condition"/>; answers that text.</summary>
    public async Task<string?> WaitForTextAsync(string css, Func<string?, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        string? text;
        while (!condition(text = await TextAsync(css)))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Waited {Patience.TotalSeconds} s for {what}; '{css}' reads '{text ?? "(absent)"}'. Message: '{await TextAsync("#message")}'.");
            }
            await Task.Delay(200);
        }
        return text;
    }

    private async Task<string> FindAsync(string css)
        => await RetryAsync(async () =>
        {
            var found = await CommandAsync(HttpMethod.Post, "element", new JsonObject { ["using"] = "css selector", ["value"] = css });
            // An element reference is an object of one property; its key differs between drivers.
            return found!.AsObject().Single().Value!.GetValue<string>();
        });

    /// <summary>Retries a command the page may not be ready for yet (no such element, no dialog yet).</summary>
    private static async Task<T> RetryAsync<T>(Func<Task<T>> command)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            try
            {
                return await command();
            }
            catch (WebDriverException e) when (e.Error is "no such element" or "no such alert" && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
            }
        }
    }

    private async Task<JsonNode?> CommandAsync(HttpMethod method, string path, JsonObject? body)
        => await SendAsync(_http, method, $"session/{_session}/{path}", body);

    private static async Task<JsonNode?> SendAsync(HttpClient http, HttpMethod method, string path, JsonObject? body)
    {
        // A body of known length: ChromeDriver does not read chunked requests.
        using var request = new HttpRequestMessage(method, path)
        {
            Content = body is null ? null : new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"),
        };
        // ChromeDriver may close a connection between commands, and a POST is not retried on one.
        request.Headers.ConnectionClose = true;
        using var response = await http.SendAsync(request);
        var answer = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["value"];
        if (!response.IsSuccessStatusCode)
        {
            throw new WebDriverException(answer?["error"]?.GetValue<string>() ?? response.StatusCode.ToString(), answer?["message"]?.GetValue<string>() ?? "");
        }
        return answer;
    }

    private static async Task WaitForDriverAsync(HttpClient http)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                var status = await SendAsync(http, HttpMethod.Get, "status", null);
                if (status?["ready"]?.GetValue<bool>() == true)
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or WebDriverException && DateTime.UtcNow < deadline)
            {
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("chromedriver did not become ready within 30 s.");
            }
            await Task.Delay(100);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await SendAsync(_http, HttpMethod.Delete, $"session/{_session}", null);
        }
        catch (Exception e) when (e is HttpRequestException or WebDriverException)
        {
            // The driver is killed next either way.
        }
        _driver.Kill(entireProcessTree: true);
        await _driver.WaitForExitAsync();
        _driver.Dispose();
        _http.Dispose();
        Directory.Delete(_profile, recursive: true);
    }
}

/// <summary>A WebDriver error: its W3C error code (such as "no such element") and message.</summary>
internal sealed class WebDriverException(string error, string message) : Exception($"{error}: {message}")
{
    public string Error { get; } = error;
}
