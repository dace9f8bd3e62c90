using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cloud.Cli;

/// <summary>
/// cloudctl's config file: named profiles, each an API URL, a token and the CA to trust. Looked up in --config,
/// then $CLOUDCTL_CONFIG, then ~/.config/cloud/cloudctl.json.
/// </summary>
internal sealed class CliConfig
{
    public string CurrentProfile { get; set; } = "default";

    public Dictionary<string, CliProfile> Profiles { get; set; } = [];

    public static string DefaultPath()
        => Environment.GetEnvironmentVariable("CLOUDCTL_CONFIG") is { Length: > 0 } path
            ? path
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config", "cloud", "cloudctl.json");

    public static CliConfig Load(string path)
    {
        if (!File.Exists(path))
        {
            return new CliConfig();
        }
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), CliJsonContext.Default.CliConfig) ?? new CliConfig();
        }
        catch (JsonException e)
        {
            throw new CliException($"Config file {path} is not valid JSON: {e.Message}");
        }
    }

    /// <summary>Writes the file readable by its owner only: it holds tokens.</summary>
    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, JsonSerializer.Serialize(this, CliJsonContext.Default.CliConfig));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    public CliProfile Resolve(string? profileName)
    {
        var name = profileName ?? CurrentProfile;
        return Profiles.TryGetValue(name, out var profile)
            ? profile
            : name == "default"
                ? new CliProfile()
                : throw new CliException($"Profile '{name}' is not in the config file.");
    }
}

internal sealed class CliProfile
{
    /// <summary>The controller's REST URL. Default https://127.0.0.1:8080.</summary>
    public string Url { get; set; } = "https://127.0.0.1:8080";

    public string? Token { get; set; }

    /// <summary>
    /// The cloud CA's certificate (PEM, the controller's Trust:Directory/ca.pem): the only root the
    /// controller's certificate is checked against. Unset: the system's trust store.
    /// </summary>
    public string? CaFile { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(CliConfig))]
internal sealed partial class CliJsonContext : JsonSerializerContext;

/// <summary>An error meant for the user: printed without a stack trace, exit code 1.</summary>
internal sealed class CliException(string message) : Exception(message);
