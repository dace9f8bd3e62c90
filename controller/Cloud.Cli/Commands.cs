using System.CommandLine;
using Cloud.Contracts.Compute.V1;
using Google.Protobuf;
using Spectre.Console;

namespace Cloud.Cli;

/// <summary>The command tree. Each verb maps onto one REST call (plus polling for --wait).</summary>
internal static partial class Commands
{
    private static readonly Option<string?> ConfigOption = new("--config") { Description = "Config file (default: $CLOUDCTL_CONFIG or ~/.config/cloud/cloudctl.json)", Recursive = true };
    private static readonly Option<string?> ProfileOption = new("--profile") { Description = "Profile in the config file", Recursive = true };
    private static readonly Option<string?> CaFileOption = new("--ca-file")
    {
        Description = "The cloud CA (PEM) the controller's certificate must chain to (default: $CLOUDCTL_CA_FILE, the profile's caFile, else the system's trust store)",
        Recursive = true,
    };
    private static readonly Option<string> OutputOption = new("--output", "-o") { Description = "table or json", DefaultValueFactory = _ => "table", Recursive = true };

    /// <summary>Parses and runs; a <see cref="CliException"/> reaches the caller instead of a stack trace on the console.</summary>
    public static Task<int> Invoke(IAnsiConsole console, string[] args)
        => Build(console).Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });

    public static RootCommand Build(IAnsiConsole console)
    {
        OutputOption.AcceptOnlyFromAmong("table", "json");
        var root = new RootCommand("cloudctl: manage VMs on the Cloud control plane") { ConfigOption, ProfileOption, CaFileOption, OutputOption };
        root.Subcommands.Add(VmCommands(console));
        var flavors = List<ListFlavorsResponse, Flavor>(console, "flavor", "Flavors (VM sizes)", "v1/flavors", r => r.Flavors,
            ["NAME", "VCPUS", "MEMORY_MB", "DISK_GB", "PUBLIC"], f => [f.Name, Str(f.Vcpus), Str(f.MemoryMb), Str(f.DiskGb), f.IsPublic ? "yes" : "no"]);
        flavors.Subcommands.Add(FlavorAccessCommand(console, "grant", "Let a tenant use a private flavor (operator)", HttpMethod.Put));
        flavors.Subcommands.Add(FlavorAccessCommand(console, "revoke", "Withdraw a tenant's use of a private flavor (operator)", HttpMethod.Delete));
        root.Subcommands.Add(flavors);
        root.Subcommands.Add(ImageCommands(console));
        root.Subcommands.Add(NodeCommands(console));
        root.Subcommands.Add(CapacityCommand(console));
        root.Subcommands.Add(OperationCommands(console));
        root.Subcommands.Add(SnapshotCommands(console));
        root.Subcommands.Add(TenantCommands(console));
        root.Subcommands.Add(TokenCommands(console));
        root.Subcommands.Add(AuditCommands(console));
        root.Subcommands.Add(ConfigCommands(console));
        root.Subcommands.Add(CompletionCommands(console));
        root.Subcommands.Add(CompleteCommand(console));
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
        var userData = new Option<string?>("--user-data-file") { Description = "File whose content the guest gets as user data (cloud-init)" };
        var fromSnapshot = new Option<string?>("--snapshot") { Description = "Start from this snapshot's disk instead of an image" };
        var count = new Option<int?>("--count") { Description = "Create this many VMs in one batch, named <name>-1 .. <name>-N" };
        var minimum = new Option<int?>("--min") { Description = "With --count: succeed if at least this many fit (default: all of them)" };
        var create = new Command("create", "Create and start a VM, or a batch of them") { name, flavor, image, fromSnapshot, labels, userData, count, minimum, wait, key };
        create.SetAction(async (parse, ct) =>
        {
            var template = new CreateVmRequest
            {
                Name = parse.GetValue(name)!,
                Flavor = parse.GetValue(flavor)!,
                Image = parse.GetValue(image) ?? "",
                Snapshot = parse.GetValue(fromSnapshot) ?? "",
            };
            if (parse.GetValue(userData) is { } file)
            {
                template.UserData = File.Exists(file) ? await File.ReadAllTextAsync(file, ct) : throw new CliException($"--user-data-file '{file}' does not exist.");
            }
            foreach (var label in parse.GetValue(labels) ?? [])
            {
                var parts = label.Split('=', 2);
                if (parts.Length != 2)
                {
                    throw new CliException($"--label '{label}' must be key=value.");
                }
                template.Labels[parts[0]] = parts[1];
            }
            var (path, request) = CreateRequest(template, parse.GetValue(count), parse.GetValue(minimum));
            using var api = Api(parse);
            var operation = await api.PostAsync<Operation>(path, request, parse.GetValue(key), ct);
            await FinishAsync(console, parse, api, operation, parse.GetValue(wait), ct);
        });

        var selector = new Option<string?>("--selector", "-l") { Description = "Only VMs with these labels: key=value,key2=value2" };
        var list = new Command("list", "List VMs (every page)") { selector };
        list.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var response = new ListVmsResponse();
            var token = "";
            do
            {
                var page = await api.GetAsync<ListVmsResponse>(
                    $"v1/vms?page_size=500&label_selector={Uri.EscapeDataString(parse.GetValue(selector) ?? "")}&page_token={Uri.EscapeDataString(token)}", ct);
                response.Vms.AddRange(page.Vms);
                token = page.NextPageToken;
            }
            while (token.Length > 0);
            // NODE is for operators; HOST_ID tells a tenant which of its VMs share a host.
            Print(console, parse, response, response.Vms, ["ID", "NAME", "STATE", "FLAVOR", "NODE", "HOST_ID", "VCPUS", "MEMORY_MB"],
                v => [v.Id, v.Name, v.State, v.Flavor, v.Node, ShortHostId(v.HostId), Str(v.Vcpus), Str(v.MemoryMb)]);
        });

        var id = new Argument<string>("id") { Description = "VM id" };
        var get = new Command("get", "Show a VM") { id };
        get.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var v = await api.GetAsync<Vm>($"v1/vms/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct);
            Print(console, parse, v, [v], ["ID", "NAME", "STATE", "FLAVOR", "NODE", "HOST_ID", "ERROR"], x => [x.Id, x.Name, x.State, x.Flavor, x.Node, x.HostId, x.Error]);
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
        vm.Subcommands.Add(Verb(console, "start", "Start a stopped VM", id, wait, key, _ => new VmActionRequest(), "start"));
        var force = new Option<bool>("--force") { Description = "Power off at once instead of asking the guest" };
        vm.Subcommands.Add(Verb(console, "stop", "Stop a VM", id, wait, key, p => new StopVmRequest { Force = p.GetValue(force) }, "stop", force));
        vm.Subcommands.Add(Verb(console, "reboot", "Reboot a VM", id, wait, key, _ => new VmActionRequest(), "reboot"));
        var newFlavor = new Option<string>("--flavor") { Description = "The new flavor", Required = true };
        vm.Subcommands.Add(Verb(console, "resize", "Resize a VM to another flavor (live when possible)", id, wait, key,
            p => new ResizeVmRequest { Flavor = p.GetValue(newFlavor)! }, "resize", newFlavor));
        var node = new Option<string>("--node") { Description = "Target node; without it the scheduler chooses" };
        vm.Subcommands.Add(Verb(console, "migrate", "Live-migrate a VM to another node (operator)", id, wait, key,
            p => new MigrateVmRequest { Node = p.GetValue(node) ?? "" }, "migrate", node));
        var snapshotName = new Option<string>("--name") { Description = "Snapshot name", Required = true };
        vm.Subcommands.Add(Verb(console, "snapshot", "Snapshot a VM (with its memory when it runs)", id, wait, key,
            p => new CreateSnapshotRequest { Name = p.GetValue(snapshotName)! }, "snapshots", snapshotName));

        var watch = new Command("watch", "Print every change of a VM's state until interrupted") { selector };
        watch.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var json = parse.GetValue(OutputOption) == "json";
            await foreach (var v in api.StreamAsync<Vm>($"v1/vms/watch?label_selector={Uri.EscapeDataString(parse.GetValue(selector) ?? "")}", ct))
            {
                console.Profile.Out.Writer.WriteLine(json ? JsonOutput.Format(v) : $"{v.UpdatedAt?.ToDateTimeOffset():u}  {v.Id}  {v.Name,-20} {v.State,-9} {(v.Node.Length > 0 ? v.Node : ShortHostId(v.HostId))}");
            }
        });
        vm.Subcommands.Add(watch);
        return vm;
    }

    /// <summary>A verb on a VM: POST v1/vms/{id}/{path} with the request the options make, then the operation.</summary>
    private static Command Verb<T>(IAnsiConsole console, string name, string description, Argument<string> id, Option<bool> wait, Option<string?> key,
        Func<System.CommandLine.ParseResult, T> request, string path, params Option[] options)
        where T : IMessage
    {
        var command = new Command(name, description) { id, wait, key };
        foreach (var option in options)
        {
            command.Options.Add(option);
        }
        command.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var operation = await api.PostAsync<Operation>($"v1/vms/{Uri.EscapeDataString(parse.GetValue(id)!)}/{path}", request(parse), parse.GetValue(key), ct);
            await FinishAsync(console, parse, api, operation, parse.GetValue(wait), ct);
        });
        return command;
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
        var list = new Command("list", "List recent operations");
        list.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var response = await api.GetAsync<ListOperationsResponse>("v1/operations?page_size=100", ct);
            Print(console, parse, response, response.Operations, ["OPERATION", "KIND", "TARGET", "STATE", "PROGRESS", "ERROR"], OperationRow);
        });
        var cancel = new Command("cancel", "Cancel an operation that has not started") { id };
        cancel.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            PrintOperation(console, parse, await api.PostAsync<Operation>($"v1/operations/{Uri.EscapeDataString(parse.GetValue(id)!)}/cancel", new CancelOperationRequest(), null, ct));
        });
        var waitFor = new Command("wait", "Wait for an operation to end, showing its progress") { id };
        waitFor.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var o = await api.GetAsync<Operation>($"v1/operations/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct);
            await FinishAsync(console, parse, api, o, wait: true, ct);
        });
        operation.Subcommands.Add(list);
        operation.Subcommands.Add(cancel);
        operation.Subcommands.Add(waitFor);
        return operation;
    }

    /// <summary>node list, cordon/uncordon (a cordoned node keeps its VMs and takes no new ones), drain, join-token and delete.</summary>
    private static Command NodeCommands(IAnsiConsole console)
    {
        string[] columns = ["NAME", "STATE", "ADDRESS", "HYPERVISOR", "VCPU USED/CAP", "MEMORY_MB USED/CAP"];
        static string[] Row(Node n) =>
            [n.Name, n.Schedulable ? n.State : n.State + " cordoned", n.Address, $"{n.Hypervisor}/{n.Accelerator}", Usage(n, "VCPU"), Usage(n, "MEMORY_MB")];
        var node = List<ListNodesResponse, Node>(console, "node", "Nodes (operator)", "v1/nodes", r => r.Nodes, columns, Row);
        foreach (var (verb, description) in new[] { ("cordon", "Stop placing new VMs on a node; its VMs stay"), ("uncordon", "Place new VMs on a node again") })
        {
            var name = new Argument<string>("name") { Description = "Node name" };
            var command = new Command(verb, description) { name };
            command.SetAction(async (parse, ct) =>
            {
                using var api = Api(parse);
                var n = await api.PostAsync<Node>($"v1/nodes/{Uri.EscapeDataString(parse.GetValue(name)!)}/{verb}", new Google.Protobuf.WellKnownTypes.Empty(), null, ct);
                Print(console, parse, n, [n], columns, Row);
            });
            node.Subcommands.Add(command);
        }
        node.Subcommands.Add(DrainCommand(console));
        node.Subcommands.Add(JoinTokenCommand(console));
        var deleteName = new Argument<string>("name") { Description = "Node name" };
        var delete = new Command("delete", "Remove a node that holds no VMs (drain it first) and revoke its certificates") { deleteName };
        delete.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var name = parse.GetValue(deleteName)!;
            var deleted = await api.DeleteAsync<DeleteNodeResponse>($"v1/nodes/{Uri.EscapeDataString(name)}", ct);
            if (parse.GetValue(OutputOption) == "json")
            {
                console.Profile.Out.Writer.WriteLine(JsonOutput.Format(deleted));
                return;
            }
            console.Profile.Out.Writer.WriteLine(
                $"Node {name} deleted; {Str(deleted.RevokedCertificates)} certificate(s) revoked. To bring it back, give its agent a new join token (cloudctl node join-token {name}).");
        });
        node.Subcommands.Add(delete);
        return node;
    }

    /// <summary>node join-token: a single-use token with which a node's agent joins; the secret is printed this once.</summary>
    private static Command JoinTokenCommand(IAnsiConsole console)
    {
        var name = new Argument<string>("name") { Description = "The node's name (its Agent:NodeName)" };
        var ttl = new Option<string?>("--ttl") { Description = "How long it may be used: 90s, 30m, 2h, 7d or hh:mm:ss (1 minute to 7 days; default: the controller's Trust:JoinTokenLifetime)" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print the token alone (for scripts)" };
        var command = new Command("join-token", "Make a single-use token with which a node's agent joins the cloud (shown once)") { name, ttl, quiet };
        command.SetAction(async (parse, ct) =>
        {
            var request = new CreateJoinTokenRequest { TtlSeconds = parse.GetValue(ttl) is { } text ? (long)ParseTtl(text).TotalSeconds : 0 };
            using var api = Api(parse);
            var nodeName = parse.GetValue(name)!;
            var token = await api.PostAsync<JoinToken>($"v1/nodes/{Uri.EscapeDataString(nodeName)}/join-tokens", request, null, ct);
            var output = console.Profile.Out.Writer;
            if (parse.GetValue(quiet))
            {
                output.WriteLine(token.Token);
            }
            else if (parse.GetValue(OutputOption) == "json")
            {
                output.WriteLine(JsonOutput.Format(token));
            }
            else
            {
                output.WriteLine($"Join token for node {token.NodeName}, single use, expires {token.ExpireTime?.ToDateTimeOffset():u} (it is not shown again):");
                output.WriteLine(token.Token);
                output.WriteLine("Give it to that node's agent as Agent:JoinToken, or in the file Agent:JoinTokenFile names.");
            }
        });
        return command;
    }

    /// <summary>"90s", "30m", "2h", "7d" or a TimeSpan ("01:30:00"), 1 minute to 7 days.</summary>
    internal static TimeSpan ParseTtl(string text)
    {
        var trimmed = text.Trim();
        TimeSpan? parsed = null;
        if (trimmed.Length > 1 && long.TryParse(trimmed[..^1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var amount)
            && amount <= 7 * 24 * 3600)
        {
            parsed = char.ToLowerInvariant(trimmed[^1]) switch
            {
                's' => TimeSpan.FromSeconds(amount),
                'm' => TimeSpan.FromMinutes(amount),
                'h' => TimeSpan.FromHours(amount),
                'd' => TimeSpan.FromDays(amount),
                _ => null,
            };
        }
        else if (trimmed.Contains(':', StringComparison.Ordinal) && TimeSpan.TryParse(trimmed, System.Globalization.CultureInfo.InvariantCulture, out var span))
        {
            parsed = span;
        }
        if (parsed is not { } ttl)
        {
            throw new CliException($"--ttl '{text}' is not a duration: write 90s, 30m, 2h, 7d or hh:mm:ss.");
        }
        if (ttl < TimeSpan.FromMinutes(1) || ttl > TimeSpan.FromDays(7))
        {
            throw new CliException($"--ttl '{text}' must be between 1 minute and 7 days.");
        }
        return ttl;
    }

    /// <summary>node drain: cordon, then live-migrate every running VM off the node; shows what became of each.</summary>
    private static Command DrainCommand(IAnsiConsole console)
    {
        var name = new Argument<string>("name") { Description = "Node name" };
        var parallel = new Option<int>("--parallel") { Description = "Migrations at once (1-16; default 2)" };
        var wait = new Option<bool>("--wait") { Description = "Wait for the drain to finish", DefaultValueFactory = _ => true };
        var key = new Option<string?>("--idempotency-key") { Description = "Makes a retried drain safe" };
        var drain = new Command("drain", "Cordon a node and live-migrate its running VMs to other nodes") { name, parallel, wait, key };
        drain.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var operation = await api.PostAsync<Operation>($"v1/nodes/{Uri.EscapeDataString(parse.GetValue(name)!)}/drain",
                new DrainNodeRequest { MaxParallel = parse.GetValue(parallel) }, parse.GetValue(key), ct);
            await FinishAsync(console, parse, api, operation, parse.GetValue(wait), ct);
        });
        return drain;
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

    /// <summary>
    /// One VM (POST /v1/vms), or with --count a batch of them (POST /v1/vms/batch) whose name
    /// is the VMs' prefix. The counts' bounds are the server's to check; what only makes sense
    /// with a batch is refused here.
    /// </summary>
    internal static (string Path, IMessage Request) CreateRequest(CreateVmRequest template, int? count, int? minimum)
    {
        if (count is null)
        {
            return minimum is null ? ("v1/vms", template) : throw new CliException("--min needs --count.");
        }
        if (template.Snapshot.Length > 0)
        {
            throw new CliException("--snapshot creates one VM; it cannot be used with --count.");
        }
        var batch = new CreateVmsRequest
        {
            NamePrefix = template.Name,
            Flavor = template.Flavor,
            Image = template.Image,
            UserData = template.UserData,
            Count = count.Value,
            Minimum = minimum ?? 0,
        };
        batch.Labels.Add(template.Labels);
        return ("v1/vms/batch", batch);
    }

    /// <summary>Polls the operation until it ends, with a progress bar, then reports its outcome.</summary>
    private static async Task FinishAsync(IAnsiConsole console, System.CommandLine.ParseResult parse, ApiClient api, Operation operation, bool wait, CancellationToken ct)
    {
        if (wait && !IsDone(operation))
        {
            operation = parse.GetValue(OutputOption) == "table" && console.Profile.Capabilities.Interactive
                ? await ProgressBarAsync(console, api, operation, ct)
                : await PollAsync(api, operation, progress => console.Profile.Out.Writer.WriteLine($"{operation.Kind} {progress}%"), parse.GetValue(OutputOption) == "table", ct);
        }
        PrintOperation(console, parse, operation);
        if (operation.State == "FAILED")
        {
            throw new CliException($"{operation.Kind} failed: {operation.ErrorCode}: {operation.ErrorMessage}");
        }
    }

    /// <summary>Polls until the operation ends, telling <paramref name="report"/> each new progress.</summary>
    private static async Task<Operation> PollAsync(ApiClient api, Operation operation, Action<int> report, bool reportProgress, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(30);
        var shown = -1;
        while (!IsDone(operation) && DateTime.UtcNow < deadline)
        {
            if (reportProgress && operation.Progress != shown)
            {
                shown = operation.Progress;
                report(shown);
            }
            await Task.Delay(TimeSpan.FromMilliseconds(250), ct);
            operation = await api.GetAsync<Operation>($"v1/operations/{operation.Id}", ct);
        }
        return operation;
    }

    /// <summary>A progress bar on a terminal: migrations and snapshots take a while.</summary>
    private static async Task<Operation> ProgressBarAsync(IAnsiConsole console, ApiClient api, Operation operation, CancellationToken ct)
        => await console.Progress().AutoClear(true).StartAsync(async context =>
        {
            var task = context.AddTask($"{operation.Kind} {operation.TargetId}", maxValue: 100);
            var result = await PollAsync(api, operation, progress => task.Value = progress, reportProgress: true, ct);
            task.Value = 100;
            return result;
        });

    private static bool IsDone(Operation operation) => operation.State is "SUCCEEDED" or "FAILED";

    private static void PrintOperation(IAnsiConsole console, System.CommandLine.ParseResult parse, Operation o)
    {
        Print(console, parse, o, [o], ["OPERATION", "KIND", "TARGET", "STATE", "PROGRESS", "ERROR"], OperationRow);
        // A batch's VMs, each with its node or why it has none (JSON output has them in the operation).
        if (o.Batch is { } batch && parse.GetValue(OutputOption) == "table")
        {
            console.Profile.Out.Writer.WriteLine($"{batch.Created} created, {batch.Placed} placed of {batch.Requested} (minimum {batch.Minimum})");
            Print(console, parse, batch, batch.Vms, ["ID", "NAME", "STATE", "NODE", "HOST_ID", "ERROR"], v => [v.Id, v.Name, v.State, v.Node, ShortHostId(v.HostId), v.Error]);
        }
        if (o.Drain is { } drain && parse.GetValue(OutputOption) == "table")
        {
            console.Profile.Out.Writer.WriteLine($"{drain.Moved} moved, {drain.Left} left");
            Print(console, parse, drain, drain.Vms, ["ID", "NAME", "OUTCOME", "NODE", "OPERATION", "REASON"], v => [v.Id, v.Name, v.Outcome, v.Node, v.Operation, v.Reason]);
        }
        if (o.TenantDeletion is { } deletion && o.State == "SUCCEEDED" && parse.GetValue(OutputOption) == "table")
        {
            console.Profile.Out.Writer.WriteLine(
                $"Deleted {deletion.Vms} VM(s), {deletion.Images} image(s), {deletion.ImageMemberships} image membership(s), {deletion.ServerGroups} server group(s); revoked {deletion.Tokens} token(s).");
        }
    }

    private static string[] OperationRow(Operation x)
        => [x.Id, x.Kind, x.TargetId, x.State + (x.Recovery.Length > 0 ? $" ({x.Recovery})" : ""), $"{x.Progress}%", string.IsNullOrEmpty(x.ErrorCode) ? "" : $"{x.ErrorCode}: {x.ErrorMessage}"];

    /// <summary>-o json: every field, false and zero too, so that a script reads a value rather than an absence.</summary>
    private static readonly JsonFormatter JsonOutput = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    private static void Print<T>(IAnsiConsole console, System.CommandLine.ParseResult parse, IMessage whole, IEnumerable<T> items, string[] columns, Func<T, string[]> row)
    {
        if (parse.GetValue(OutputOption) == "json")
        {
            console.Profile.Out.Writer.WriteLine(JsonOutput.Format(whole));
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

    internal static string ConfigPath(System.CommandLine.ParseResult parse) => parse.GetValue(ConfigOption) ?? CliConfig.DefaultPath();

    private static ApiClient Api(System.CommandLine.ParseResult parse)
    {
        var config = CliConfig.Load(ConfigPath(parse));
        var profile = config.Resolve(parse.GetValue(ProfileOption));
        if (Environment.GetEnvironmentVariable("CLOUDCTL_URL") is { Length: > 0 } url)
        {
            profile.Url = url;
        }
        if (Environment.GetEnvironmentVariable("CLOUDCTL_TOKEN") is { Length: > 0 } token)
        {
            profile.Token = token;
        }
        // The flag, then the environment, then the profile; none: the system's trust store.
        var caFile = parse.GetValue(CaFileOption) is { Length: > 0 } flag ? flag
            : Environment.GetEnvironmentVariable("CLOUDCTL_CA_FILE") is { Length: > 0 } variable ? variable
            : profile.CaFile;
        return ApiClient.Create(profile, caFile);
    }

    private static string Usage(Node node, string resourceClass)
    {
        var r = node.Resources.FirstOrDefault(x => x.ResourceClass == resourceClass);
        return r is null ? "-" : $"{r.Used}/{(long)((r.Total - r.Reserved) * r.AllocationRatio)}";
    }

    /// <summary>A host id's first 12 characters: enough to tell hosts apart in a table (JSON output has it whole).</summary>
    private static string ShortHostId(string hostId) => hostId.Length > 12 ? hostId[..12] : hostId;

    private static string Str(long value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
