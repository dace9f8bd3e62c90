using System.CommandLine;
using Cloud.Contracts.Compute.V1;
using Spectre.Console;

namespace Cloud.Cli;

/// <summary>Snapshots, tenants and tokens.</summary>
internal static partial class Commands
{
    private static Command SnapshotCommands(IAnsiConsole console)
    {
        var snapshot = new Command("snapshot", "Snapshots of VMs (create them with 'vm snapshot')");
        var id = new Argument<string>("id") { Description = "Snapshot id" };
        var wait = new Option<bool>("--wait") { Description = "Wait for the operation to finish", DefaultValueFactory = _ => true };
        var vm = new Option<string?>("--vm") { Description = "Only this VM's snapshots" };
        // NODE (operators) and HOST_ID say where the data is; ERROR why a LOST snapshot is lost.
        string[] columns = ["ID", "VM", "NAME", "STATE", "NODE", "HOST_ID", "MEMORY", "SIZE_BYTES", "ERROR"];
        static string[] Row(Snapshot s) => [s.Id, s.VmId, s.Name, s.State, s.Node, ShortHostId(s.HostId), s.IncludesMemory ? "yes" : "no", Str(s.SizeBytes), s.Error];

        var list = new Command("list", "List snapshots") { vm };
        list.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var path = parse.GetValue(vm) is { } vmId ? $"v1/vms/{Uri.EscapeDataString(vmId)}/snapshots" : "v1/snapshots";
            var response = await api.GetAsync<ListSnapshotsResponse>(path, ct);
            Print(console, parse, response, response.Snapshots, columns, Row);
        });
        var get = new Command("get", "Show a snapshot") { id };
        get.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var s = await api.GetAsync<Snapshot>($"v1/snapshots/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct);
            Print(console, parse, s, [s], columns, Row);
        });
        var restore = new Command("restore", "Bring the VM back to a snapshot") { id, wait };
        restore.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var operation = await api.PostAsync<Operation>($"v1/snapshots/{Uri.EscapeDataString(parse.GetValue(id)!)}/restore", new RestoreSnapshotRequest(), null, ct);
            await FinishAsync(console, parse, api, operation, parse.GetValue(wait), ct);
        });
        var delete = new Command("delete", "Delete a snapshot") { id, wait };
        delete.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var operation = await api.DeleteAsync<Operation>($"v1/snapshots/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct);
            await FinishAsync(console, parse, api, operation, parse.GetValue(wait), ct);
        });
        snapshot.Subcommands.Add(list);
        snapshot.Subcommands.Add(get);
        snapshot.Subcommands.Add(restore);
        snapshot.Subcommands.Add(delete);
        return snapshot;
    }

    private static Command FlavorAccessCommand(IAnsiConsole console, string name, string description, HttpMethod method)
    {
        var flavor = new Argument<string>("flavor") { Description = "Private flavor" };
        var tenant = new Argument<string>("tenant") { Description = "Tenant id" };
        var command = new Command(name, description) { flavor, tenant };
        command.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var path = $"v1/flavors/{Uri.EscapeDataString(parse.GetValue(flavor)!)}/access/{Uri.EscapeDataString(parse.GetValue(tenant)!)}";
            var f = method == HttpMethod.Put ? await api.PutAsync<Flavor>(path, new FlavorAccessRequest(), ct) : await api.DeleteAsync<Flavor>(path, ct);
            console.MarkupLineInterpolated($"Flavor [bold]{f.Name}[/]: {(method == HttpMethod.Put ? "granted to" : "withdrawn from")} {parse.GetValue(tenant)}.");
        });
        return command;
    }

    private static Command TenantCommands(IAnsiConsole console)
    {
        var tenant = new Command("tenant", "Tenants and their quotas (operators manage them)");
        var id = new Argument<string>("id") { Description = "Tenant id (a DNS label)" };
        var displayName = new Option<string?>("--display-name") { Description = "Human-readable name" };
        var instances = new Option<int?>("--instances") { Description = "Quota: VMs" };
        var vcpus = new Option<int?>("--vcpus") { Description = "Quota: vCPUs" };
        var memory = new Option<long?>("--memory-mb") { Description = "Quota: memory in MiB" };
        var disk = new Option<long?>("--disk-gb") { Description = "Quota: disk in GiB" };
        var snapshots = new Option<int?>("--snapshots") { Description = "Quota: snapshots" };
        var images = new Option<int?>("--images") { Description = "Quota: images owned" };
        var imageGb = new Option<long?>("--image-gb") { Description = "Quota: GiB of image files (each image rounded up)" };
        string[] columns = ["ID", "NAME", "STATE", "INSTANCES", "VCPUS", "MEMORY_MB", "DISK_GB", "SNAPSHOTS", "IMAGES", "IMAGE_GB"];
        static string[] Row(Tenant t) =>
        [
            t.Id, t.DisplayName, t.State, $"{t.Usage?.Instances}/{t.Quota?.Instances}", $"{t.Usage?.Vcpus}/{t.Quota?.Vcpus}",
            $"{t.Usage?.MemoryMb}/{t.Quota?.MemoryMb}", $"{t.Usage?.DiskGb}/{t.Quota?.DiskGb}", $"{t.Usage?.Snapshots}/{t.Quota?.Snapshots}",
            $"{t.Usage?.Images}/{t.Quota?.Images}", $"{t.Usage?.ImageGb}/{t.Quota?.ImageGb}",
        ];
        Quota QuotaFrom(System.CommandLine.ParseResult parse, Quota? current) => new()
        {
            Instances = parse.GetValue(instances) ?? current?.Instances ?? 0,
            Vcpus = parse.GetValue(vcpus) ?? current?.Vcpus ?? 0,
            MemoryMb = parse.GetValue(memory) ?? current?.MemoryMb ?? 0,
            DiskGb = parse.GetValue(disk) ?? current?.DiskGb ?? 0,
            Snapshots = parse.GetValue(snapshots) ?? current?.Snapshots ?? 0,
            Images = parse.GetValue(images) ?? current?.Images ?? 0,
            ImageGb = parse.GetValue(imageGb) ?? current?.ImageGb ?? 0,
        };

        var create = new Command("create", "Create a tenant (default quota for what is not given)") { id, displayName, instances, vcpus, memory, disk, snapshots, images, imageGb };
        create.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var given = new Option[] { instances, vcpus, memory, disk, snapshots, images, imageGb }.Any(o => parse.GetResult(o) is not null);
            var request = new CreateTenantRequest { Id = parse.GetValue(id)!, DisplayName = parse.GetValue(displayName) ?? "" };
            if (given)
            {
                request.Quota = QuotaFrom(parse, DefaultQuota);
            }
            var t = await api.PostAsync<Tenant>("v1/tenants", request, null, ct);
            Print(console, parse, t, [t], columns, Row);
        });
        var list = new Command("list", "List tenants with usage/quota");
        list.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var response = await api.GetAsync<ListTenantsResponse>("v1/tenants", ct);
            Print(console, parse, response, response.Tenants, columns, Row);
        });
        var get = new Command("get", "Show a tenant with its usage and quota") { id };
        get.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var t = await api.GetAsync<Tenant>($"v1/tenants/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct);
            Print(console, parse, t, [t], columns, Row);
        });
        var quota = new Command("quota", "Change a tenant's quota (what is not given stays)") { id, instances, vcpus, memory, disk, snapshots, images, imageGb };
        quota.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var path = $"v1/tenants/{Uri.EscapeDataString(parse.GetValue(id)!)}";
            var current = await api.GetAsync<Tenant>(path, ct);
            var t = await api.PutAsync<Tenant>(path + "/quota", QuotaFrom(parse, current.Quota), ct);
            Print(console, parse, t, [t], columns, Row);
        });
        tenant.Subcommands.Add(create);
        tenant.Subcommands.Add(list);
        tenant.Subcommands.Add(get);
        tenant.Subcommands.Add(quota);
        tenant.Subcommands.Add(TenantDeleteCommand(console, id));
        return tenant;
    }

    /// <summary>tenant delete ID [--cascade]: refused while the tenant owns VMs or snapshots, unless --cascade deletes them too.</summary>
    private static Command TenantDeleteCommand(IAnsiConsole console, Argument<string> id)
    {
        var cascade = new Option<bool>("--cascade") { Description = "Also delete the tenant's VMs (and their snapshots); without it, a tenant that owns any is refused" };
        var wait = new Option<bool>("--wait") { Description = "Wait for the deletion to finish", DefaultValueFactory = _ => true };
        var delete = new Command("delete", "Delete a tenant with its tokens (revoked at once), images, image memberships, server groups and quota (operator)") { id, cascade, wait };
        delete.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var path = $"v1/tenants/{Uri.EscapeDataString(parse.GetValue(id)!)}" + (parse.GetValue(cascade) ? "?cascade=true" : "");
            var operation = await api.DeleteAsync<Operation>(path, ct);
            await FinishAsync(console, parse, api, operation, parse.GetValue(wait), ct);
        });
        return delete;
    }

    /// <summary>The server's default quota, which 'tenant create' completes partial quotas with.</summary>
    private static Quota DefaultQuota => new() { Instances = 10, Vcpus = 20, MemoryMb = 40_960, DiskGb = 500, Snapshots = 20, Images = 50, ImageGb = 100 };

    private static Command TokenCommands(IAnsiConsole console)
    {
        var token = new Command("token", "API tokens (operators issue and revoke them)");
        var tenant = new Option<string?>("--tenant") { Description = "The tenant the token acts for (none for an operator token)" };
        var role = new Option<string>("--role") { Description = "member, reader or operator", DefaultValueFactory = _ => "member" };
        role.AcceptOnlyFromAmong("member", "reader", "operator");
        var name = new Option<string>("--name") { Description = "What the token is for", Required = true };
        var ttl = new Option<int>("--ttl-days") { Description = "Days until it expires; 0 never", DefaultValueFactory = _ => 90 };
        string[] columns = ["ID", "TENANT", "NAME", "ROLE", "EXPIRES", "REVOKED"];
        static string[] Row(ApiToken t) => [t.Id, t.Tenant, t.Name, t.Role, t.ExpiresAt?.ToDateTimeOffset().ToString("u") ?? "never", t.RevokedAt?.ToDateTimeOffset().ToString("u") ?? ""];

        var create = new Command("create", "Issue a token; its secret is shown once") { tenant, role, name, ttl };
        create.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var t = await api.PostAsync<ApiToken>("v1/tokens",
                new CreateTokenRequest { Tenant = parse.GetValue(tenant) ?? "", Role = parse.GetValue(role)!, Name = parse.GetValue(name)!, TtlDays = parse.GetValue(ttl) }, null, ct);
            Print(console, parse, t, [t], [.. columns, "SECRET"], x => [.. Row(x), x.Secret]);
        });
        var list = new Command("list", "List tokens (never their secrets)") { tenant };
        list.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var response = await api.GetAsync<ListTokensResponse>($"v1/tokens?tenant={Uri.EscapeDataString(parse.GetValue(tenant) ?? "")}", ct);
            Print(console, parse, response, response.Tokens, columns, Row);
        });
        var id = new Argument<string>("id") { Description = "Token id" };
        var revoke = new Command("revoke", "Revoke a token at once") { id };
        revoke.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var t = await api.DeleteAsync<ApiToken>($"v1/tokens/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct);
            Print(console, parse, t, [t], columns, Row);
        });
        token.Subcommands.Add(create);
        token.Subcommands.Add(list);
        token.Subcommands.Add(revoke);
        return token;
    }
}
