using System.CommandLine;
using Cloud.Contracts.Compute.V1;
using Google.Protobuf;
using Spectre.Console;

namespace Cloud.Cli;

/// <summary>The command tree. Each verb maps onto one REST call (plus polling for --wait).</summary>
internal static class Commands
{
    private static readonly Option<string?> ConfigOption = new("--config") { Description = "Config file (default: $CLOUDCTL_CONFIG or ~/.config/cloud/cloudctl.json)", Recursive = true };
    private static readonly Option<string?> ProfileOption = new("--profile") { Description = "Profile in the config file", Recursive = true };
    private static readonly Option<string> OutputOption = new("--output", "-o") { Description = "table or json", DefaultValueFactory = _ => "table", Recursive = true };

    /// <summary>Parses and runs; a <see cref="CliException"/> reaches the caller instead of a stack trace on the console.</summary>
    public static Task<int> Invoke(IAnsiConsole console, string[] args)
        => Build(console).Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });

    public static RootCommand Build(IAnsiConsole console)
    {
        OutputOption.AcceptOnlyFromAmong("table", "json");
        var root = new RootCommand("cloudctl: manage VMs on the Cloud control plane") { ConfigOption, ProfileOption, OutputOption };
        root.Subcommands.Add(VmCommands(console));
        root.Subcommands.Add(List<ListFlavorsResponse, Flavor>(console, "flavor", "Flavors (VM sizes)", "v1/flavors", r => r.Flavors,
            ["NAME", "VCPUS", "MEMORY_MB", "DISK_GB"], f => [f.Name, Str(f.Vcpus), Str(f.MemoryMb), Str(f.DiskGb)]));
        root.Subcommands.Add(List<ListNodesResponse, Node>(console, "node", "Nodes (operator)", "v1/nodes", r => r.Nodes,
            ["NAME", "STATE", "ADDRESS", "HYPERVISOR", "VCPU USED/CAP", "MEMORY_MB USED/CAP"],
            n => [n.Name, n.State, n.Address, $"{n.Hypervisor}/{n.Accelerator}", Usage(n, "VCPU"), Usage(n, "MEMORY_MB")]));
        root.Subcommands.Add(OperationCommands(console));
        return root;
    }

    private static Command VmCommands(IAnsiConsole console)
    {
        var vm = new Command("vm", "Virtual machines");

        var name = new Option<string>("--name") { Description = "VM name (DNS label)", Required = true };
        var flavor = new Option<string>("--flavor") { Description = "Flavor name", DefaultValueFactory = _ => "m1.tiny" };
        var image = new Option<string?>("--image") { Description = "Image id (empty: a blank disk)" };
        var labels = new Option<string[]>("--label") { Description = "key=value, repeatable", AllowMultipleArgumentsPerToken = false };
        var wait = new Option<bool>("--wait") { Description = "Wait for the operation to finish", DefaultValueFactory = _ => true };
        var key = new Option<string?>("--idempotency-key") { Description = "Makes a retried create safe" };
        var create = new Command("create", "Create and start a VM") { name, flavor, image, labels, wait, key };
        create.SetAction(async (parse, ct) =>
        {
            var request = new CreateVmRequest { Name = parse.GetValue(name)!, Flavor = parse.GetValue(flavor)!, Image = parse.GetValue(image) ?? "" };
            foreach (var label in parse.GetValue(labels) ?? [])
            {
                var parts = label.Split('=', 2);
                if (parts.Length != 2)
                {
                    throw new CliException($"--label '{label}' must be key=value.");
                }
                request.Labels[parts[0]] = parts[1];
            }
            using var api = Api(parse);
            var operation = await api.PostAsync<Operation>("v1/vms", request, parse.GetValue(key), ct);
            await FinishAsync(console, parse, api, operation, parse.GetValue(wait), ct);
        });

        var list = new Command("list", "List VMs");
        list.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var response = await api.GetAsync<ListVmsResponse>("v1/vms", ct);
            Print(console, parse, response, response.Vms, ["ID", "NAME", "STATE", "FLAVOR", "NODE", "VCPUS", "MEMORY_MB"],
                v => [v.Id, v.Name, v.State, v.Flavor, v.Node, Str(v.Vcpus), Str(v.MemoryMb)]);
        });

        var id = new Argument<string>("id") { Description = "VM id" };
        var get = new Command("get", "Show a VM") { id };
        get.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var v = await api.GetAsync<Vm>($"v1/vms/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct);
            Print(console, parse, v, [v], ["ID", "NAME", "STATE", "FLAVOR", "NODE", "ERROR"], x => [x.Id, x.Name, x.State, x.Flavor, x.Node, x.Error]);
        });

        var delete = new Command("delete", "Delete a VM and release its capacity") { id, wait };
        delete.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var operation = await api.DeleteAsync<Operation>($"v1/vms/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct);
            await FinishAsync(console, parse, api, operation, parse.GetValue(wait), ct);
        });

        vm.Subcommands.Add(create);
        vm.Subcommands.Add(list);
        vm.Subcommands.Add(get);
        vm.Subcommands.Add(delete);
        return vm;
    }

    private static Command OperationCommands(IAnsiConsole console)
    {
        var operation = new Command("operation", "Long-running operations");
        operation.Aliases.Add("op");
        var id = new Argument<string>("id") { Description = "Operation id" };
        var get = new Command("get", "Show an operation") { id };
        get.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            PrintOperation(console, parse, await api.GetAsync<Operation>($"v1/operations/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct));
        });
        operation.Subcommands.Add(get);
        return operation;
    }

    private static Command List<TResponse, TItem>(IAnsiConsole console, string noun, string description, string path,
        Func<TResponse, IEnumerable<TItem>> items, string[] columns, Func<TItem, string[]> row)
        where TResponse : IMessage<TResponse>, new()
    {
        var command = new Command(noun, description);
        var list = new Command("list", $"List {noun}s");
        list.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var response = await api.GetAsync<TResponse>(path, ct);
            Print(console, parse, response, items(response), columns, row);
        });
        command.Subcommands.Add(list);
        return command;
    }

    /// <summary>Polls the operation until it ends, with a progress bar, then reports its outcome.</summary>
    private static async Task FinishAsync(IAnsiConsole console, System.CommandLine.ParseResult parse, ApiClient api, Operation operation, bool wait, CancellationToken ct)
    {
        if (wait && !IsDone(operation))
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(10);
            while (!IsDone(operation) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), ct);
                operation = await api.GetAsync<Operation>($"v1/operations/{operation.Id}", ct);
            }
        }
        PrintOperation(console, parse, operation);
        if (operation.State == "FAILED")
        {
            throw new CliException($"{operation.Kind} failed: {operation.ErrorCode}: {operation.ErrorMessage}");
        }
    }

    private static bool IsDone(Operation operation) => operation.State is "SUCCEEDED" or "FAILED";

    private static void PrintOperation(IAnsiConsole console, System.CommandLine.ParseResult parse, Operation o)
        => Print(console, parse, o, [o], ["OPERATION", "KIND", "TARGET", "STATE", "PROGRESS", "ERROR"],
            x => [x.Id, x.Kind, x.TargetId, x.State, $"{x.Progress}%", string.IsNullOrEmpty(x.ErrorCode) ? "" : $"{x.ErrorCode}: {x.ErrorMessage}"]);

    private static void Print<T>(IAnsiConsole console, System.CommandLine.ParseResult parse, IMessage whole, IEnumerable<T> items, string[] columns, Func<T, string[]> row)
    {
        if (parse.GetValue(OutputOption) == "json")
        {
            console.Profile.Out.Writer.WriteLine(JsonFormatter.Default.Format(whole));
            return;
        }
        var table = new Table().Border(TableBorder.Simple);
        foreach (var column in columns)
        {
            table.AddColumn(column);
        }
        foreach (var item in items)
        {
            table.AddRow([.. row(item).Select(Markup.Escape)]);
        }
        console.Write(table);
    }

    private static ApiClient Api(System.CommandLine.ParseResult parse)
    {
        var config = CliConfig.Load(parse.GetValue(ConfigOption) ?? CliConfig.DefaultPath());
        var profile = config.Resolve(parse.GetValue(ProfileOption));
        if (Environment.GetEnvironmentVariable("CLOUDCTL_URL") is { Length: > 0 } url)
        {
            profile.Url = url;
        }
        if (Environment.GetEnvironmentVariable("CLOUDCTL_TOKEN") is { Length: > 0 } token)
        {
            profile.Token = token;
        }
        return ApiClient.Create(profile);
    }

    private static string Usage(Node node, string resourceClass)
    {
        var r = node.Resources.FirstOrDefault(x => x.ResourceClass == resourceClass);
        return r is null ? "-" : $"{r.Used}/{(long)((r.Total - r.Reserved) * r.AllocationRatio)}";
    }

    private static string Str(long value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
