using Cloud.Cli;
using Spectre.Console;

namespace Cloud.Controller.Tests.Support;

/// <summary>Runs cloudctl in process against a config file, capturing what it prints.</summary>
internal static class Cloudctl
{
    public static async Task<(int Exit, string Output)> RunAsync(string config, params string[] args)
    {
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = 240;
        var exit = await Commands.Invoke(console, [.. args, "--config", config]);
        return (exit, output.ToString());
    }

    /// <summary>A config file with one profile, as 'cloudctl config set-profile' or up.sh writes it.</summary>
    public static string WriteConfig(Uri url, string token)
    {
        var path = Path.Combine(Path.GetTempPath(), $"cloudctl-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, $$"""
            { "currentProfile": "default",
              "profiles": { "default": { "url": "{{url}}", "token": "{{token}}" } } }
            """);
        return path;
    }
}
