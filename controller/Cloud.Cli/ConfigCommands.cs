using System.CommandLine;
using Spectre.Console;

namespace Cloud.Cli;

/// <summary>The config file's profiles, and shell completion.</summary>
internal static partial class Commands
{
    private static Command ConfigCommands(IAnsiConsole console)
    {
        var config = new Command("config", "Profiles in the config file: a URL, a token and a CA file each");
        var name = new Argument<string>("profile") { Description = "Profile name" };
        var url = new Option<string?>("--url") { Description = "The controller's REST URL" };
        var token = new Option<string?>("--token") { Description = "The API token" };

        var set = new Command("set-profile", "Add or change a profile (--ca-file: the CA it trusts)") { name, url, token };
        set.SetAction(parse =>
        {
            var path = ConfigPath(parse);
            var file = CliConfig.Load(path);
            var profile = file.Profiles.TryGetValue(parse.GetValue(name)!, out var existing) ? existing : new CliProfile();
            if (parse.GetValue(url) is { } newUrl)
            {
                ControllerTls.ParseUrl(newUrl, "--url");
                profile.Url = newUrl;
            }
            profile.Token = parse.GetValue(token) ?? profile.Token;
            // --ca-file here is the profile's CA from now on (checked now, kept as a full path);
            // --ca-file "" takes it away (the system's trust store again).
            if (parse.GetValue(CaFileOption) is { } caFile)
            {
                if (caFile.Length > 0)
                {
                    ControllerTls.ReadCaFile(caFile);
                }
                profile.CaFile = caFile.Length > 0 ? Path.GetFullPath(caFile) : null;
            }
            file.Profiles[parse.GetValue(name)!] = profile;
            file.Save(path);
            console.MarkupLineInterpolated($"Profile [bold]{parse.GetValue(name)}[/] saved in {path}.");
        });
        var use = new Command("use", "Make a profile the current one") { name };
        use.SetAction(parse =>
        {
            var path = ConfigPath(parse);
            var file = CliConfig.Load(path);
            if (!file.Profiles.ContainsKey(parse.GetValue(name)!))
            {
                throw new CliException($"Profile '{parse.GetValue(name)}' is not in {path}.");
            }
            file.CurrentProfile = parse.GetValue(name)!;
            file.Save(path);
            console.MarkupLineInterpolated($"Now using profile [bold]{file.CurrentProfile}[/].");
        });
        var view = new Command("view", "Show the profiles (tokens shortened)");
        view.SetAction(parse =>
        {
            var file = CliConfig.Load(ConfigPath(parse));
            var table = new Table().Border(TableBorder.Simple).AddColumns("CURRENT", "PROFILE", "URL", "TOKEN", "CA_FILE");
            foreach (var (profileName, profile) in file.Profiles.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                var shown = profile.Token is { Length: > 10 } t ? t[..10] + "..." : profile.Token is null ? "" : "***";
                table.AddRow(profileName == file.CurrentProfile ? "*" : "", Markup.Escape(profileName), Markup.Escape(profile.Url), Markup.Escape(shown), Markup.Escape(profile.CaFile ?? ""));
            }
            console.Write(table);
        });
        config.Subcommands.Add(set);
        config.Subcommands.Add(use);
        config.Subcommands.Add(view);
        return config;
    }

    private static Command CompletionCommands(IAnsiConsole console)
    {
        var completion = new Command("completion", "Print a shell completion script: eval \"$(cloudctl completion bash)\"");
        var shell = new Argument<string>("shell") { Description = "bash or zsh" };
        shell.AcceptOnlyFromAmong("bash", "zsh");
        completion.Arguments.Add(shell);
        completion.SetAction(parse =>
        {
            var script = """
                _cloudctl() {
                  local line="${COMP_LINE:0:$COMP_POINT}"
                  local IFS=$'\n'
                  COMPREPLY=( $(cloudctl __complete "${line#* }" 2>/dev/null) )
                }
                complete -o default -F _cloudctl cloudctl
                """;
            console.Profile.Out.Writer.WriteLine(parse.GetValue(shell) == "zsh" ? "autoload -U +X bashcompinit && bashcompinit\n" + script : script);
        });

        return completion;
    }

    /// <summary>What the completion script calls with the words after "cloudctl" so far; prints the candidates for the last one.</summary>
    private static Command CompleteCommand(IAnsiConsole console)
    {
        var complete = new Command("__complete") { Hidden = true };
        var line = new Argument<string>("line") { DefaultValueFactory = _ => "" };
        complete.Arguments.Add(line);
        complete.SetAction(parse =>
        {
            var text = parse.GetValue(line) ?? "";
            var words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var partial = text.EndsWith(' ') || words.Length == 0 ? "" : words[^1];
            foreach (var candidate in parse.RootCommandResult.Command.Parse(text).GetCompletions(text.Length)
                .Select(c => c.Label).Where(l => l.StartsWith(partial, StringComparison.Ordinal)).Distinct())
            {
                console.Profile.Out.Writer.WriteLine(candidate);
            }
        });
        return complete;
    }
}
