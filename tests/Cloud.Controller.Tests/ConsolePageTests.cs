using Microsoft.Extensions.DependencyInjection;
using System.Net;
using Cloud.Controller.Tests.Support;

namespace Cloud.Controller.Tests;

/// <summary>
/// The tenant console in a real browser (headless Chromium): a tenant signs in with its token,
/// sees only its own VMs and quota, and creates, stops and deletes a VM from the page; a bad
/// token gets the API's refusal and nothing else. The page keeps to its own origin.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class ConsolePageTests(CloudFixture cloud)
{
    [Fact]
    public async Task A_tenant_signs_in_and_creates_stops_and_deletes_a_vm_from_the_page()
    {
        using var tenant = await cloud.CreateTenantAsync("console");
        using var neighbour = await cloud.CreateTenantAsync("neighbour");
        var theirs = await neighbour.Member.CreateRunningVmAsync("not-yours");
        await using var browser = await Browser.StartAsync(cloud.ControllerServices.GetRequiredService<Cloud.Controller.Trust.ControllerCertificates>().Api);
        await browser.NavigateAsync(new Uri(cloud.RestUrl, "/console"));

        await browser.TypeAsync("#token", tenant.MemberToken);
        await browser.ClickAsync("#sign-in");
        await browser.WaitForTextAsync("#tenant", t => t == $"Tenant {tenant.Id}", "the tenant's name");
        await browser.WaitForTextAsync("tr[data-quota='instances'] [data-field='usage']", t => t == "0 of 50", "the instance quota");
        Assert.Equal(0L, (await browser.EvaluateAsync("return document.querySelectorAll('#vms tbody tr').length;"))!.GetValue<long>());

        await browser.TypeAsync("#vm-name", "from-the-page");
        await browser.ClickAsync($"#vm-flavor option[value='{Tenancy.Nano}']");
        await browser.ClickAsync("#create");
        const string State = "tr[data-name='from-the-page'] [data-field='state']";
        await browser.WaitForTextAsync(State, s => s == "RUNNING", "the new VM to run");
        await browser.WaitForTextAsync("tr[data-quota='instances'] [data-field='usage']", t => t == "1 of 50", "the instance quota to count it");
        var vmId = (await browser.EvaluateAsync("return document.querySelector(\"tr[data-name='from-the-page']\").dataset.vmId;"))!.GetValue<string>();
        var (_, vm) = await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}");
        Assert.Equal(("from-the-page", "RUNNING", Tenancy.Nano), (vm.Str("name"), vm.Str("state"), vm.Str("flavor")));
        Assert.Null(await browser.TextAsync($"tr[data-vm-id='{theirs}']"));

        await browser.ClickAsync("tr[data-name='from-the-page'] button[data-action='stop']");
        await browser.WaitForTextAsync(State, s => s == "STOPPED", "the VM to stop");
        Assert.Equal("STOPPED", (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Body.Str("state"));

        await browser.ClickAsync("tr[data-name='from-the-page'] button[data-action='delete']");
        await browser.AcceptDialogAsync();
        await browser.WaitForTextAsync(State, s => s is null, "the VM to go");
        Assert.Equal(HttpStatusCode.NotFound, (await tenant.Member.GetJsonAsync($"/v1/vms/{vmId}")).Status);
        await browser.WaitForTextAsync("tr[data-quota='instances'] [data-field='usage']", t => t == "0 of 50", "the quota to be given back");
        Assert.Equal("SUCCEEDED", (await neighbour.Member.RunAsync(HttpMethod.Delete, $"/v1/vms/{theirs}")).Str("state"));
    }

    [Fact]
    public async Task A_bad_token_gets_the_apis_refusal_and_no_workspace()
    {
        await using var browser = await Browser.StartAsync(cloud.ControllerServices.GetRequiredService<Cloud.Controller.Trust.ControllerCertificates>().Api);
        await browser.NavigateAsync(new Uri(cloud.RestUrl, "/console"));

        await browser.TypeAsync("#token", "cloud_not-a-token");
        await browser.ClickAsync("#sign-in");

        var message = await browser.WaitForTextAsync("#message", m => !string.IsNullOrEmpty(m), "the refusal");
        Assert.StartsWith("UNAUTHENTICATED:", message, StringComparison.Ordinal);
        Assert.True((await browser.EvaluateAsync("return document.getElementById('workspace').hidden;"))!.GetValue<bool>());
        Assert.Null(await browser.EvaluateAsync("return sessionStorage.getItem('cloud.token');"));
    }

    [Fact]
    public async Task The_page_keeps_to_its_own_origin_and_unknown_files_are_not_found()
    {
        using var page = await cloud.Http.GetAsync("/console");
        using var script = await cloud.Http.GetAsync("/console/app.js");
        using var missing = await cloud.Http.GetAsync("/console/secrets.json");
        using var root = await new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, SslOptions = Cloud.Testing.TestTrust.Shared.Handler().SslOptions }) { BaseAddress = cloud.RestUrl }.GetAsync("/");

        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
        var policy = string.Join(";", page.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("script-src 'self'", policy, StringComparison.Ordinal);
        Assert.Contains("connect-src 'self'", policy, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", policy, StringComparison.Ordinal);
        Assert.Equal("nosniff", string.Join("", page.Headers.GetValues("X-Content-Type-Options")));
        Assert.Contains("<script src=\"/console/app.js\"", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("text/javascript", script.Content.Headers.ContentType!.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal(HttpStatusCode.Redirect, root.StatusCode);
        Assert.Equal("/console", root.Headers.Location!.ToString());
    }
}
