using Cloud.Cli;
using Cloud.Testing;
using Spectre.Console;

namespace Cloud.Controller.Tests.Support;

/// <summary>
/// Runs cloudctl in process against a config file, capturing what it prints. The tests' cloudctl
/// trusts the tests' CA (<see cref="TestTrust.Shared"/>), as an operator's trusts the cloud's ca.pem.
/// </summary>
internal static class Cloudctl
{
    private static readonly Lazy<string> SharedCaFile = new(() =>
    {
        var path = Path.Combine(TestTrust.NewFolder("cloudctl-ca"), "ca.pem");
        File.WriteAllText(path, TestTrust.Shared.Authority.CertificatePem());
        return path;
    });

    /// <summary>The tests' CA certificate (PEM) in a file, as --ca-file takes it.</summary>
    public static string CaFile => SharedCaFile.Value;

    /// <summary>Runs with --ca-file naming the tests' CA, unless the arguments name a CA file of their own.</summary>
    public static Task<(int Exit, string Output)> RunAsync(string config, params string[] args)
        => RunAsIsAsync(config, args.Contains("--ca-file") ? args : [.. args, "--ca-file", CaFile]);

    /// <summary>Runs with exactly these arguments (and --config): the CA is the flag's, the environment's or the profile's.</summary>
    public static async Task<(int Exit, string Output)> RunAsIsAsync(string config, params string[] args)
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

    /// <summary>
    /// A config file with one profile, as 'cloudctl config set-profile' or up.sh writes it: the
    /// tests' CA as its caFile unless <paramref name="caFile"/> says otherwise ("" for none).
    /// </summary>
    public static string WriteConfig(Uri url, string token, string? caFile = null)
    {
        var path = Path.Combine(Path.GetTempPath(), $"cloudctl-{Guid.NewGuid():N}.json");
        var ca = caFile ?? CaFile;
        File.WriteAllText(path, $$"""
            { "currentProfile": "default",
              "profiles": { "default": { "url": "{{url}}", "token": "{{token}}"{{(ca.Length > 0 ? $", \"caFile\": \"{ca}\"" : "")}} } } }
            """);
        return path;
    }
}
