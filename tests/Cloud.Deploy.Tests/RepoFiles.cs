using System.Diagnostics;
using System.Text.Json;

namespace Cloud.Deploy.Tests;

/// <summary>The repository's files, and the tools that read them run as child processes.</summary>
internal static class RepoFiles
{
    public static string Root { get; } = FindRoot();

    public static string PathOf(string relative) => Path.Combine(Root, relative);

    public static string Read(string relative) => File.ReadAllText(PathOf(relative));

    public static (int ExitCode, string Stdout, string Stderr) Run(string file, IEnumerable<string> args, IDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(file)
        {
            WorkingDirectory = Root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(1)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within a minute");
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Every YAML document of a file, as JSON (Debian's python3-yaml does the parsing).</summary>
    public static IReadOnlyList<JsonElement> ReadYamlDocuments(string relative)
    {
        const string Script = "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))";
        var (code, stdout, stderr) = Run("/usr/bin/python3", ["-c", Script, PathOf(relative)]);
        Assert.True(code == 0, $"{relative} is not valid YAML: {stderr}");
        using var json = JsonDocument.Parse(stdout);
        return [.. json.RootElement.EnumerateArray().Select(d => d.Clone())];
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Cloud.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("Cloud.sln not found above " + AppContext.BaseDirectory);
    }
}
