using System.Text.RegularExpressions;
using Cloud.Controller.Api;
using Cloud.Contracts.Compute.V1;

namespace Cloud.Controller.Vms;

/// <summary>Checks of what tenants send, before anything is written.</summary>
internal static partial class VmValidation
{
    public const int MaxLabels = 64;
    public const int MaxUserDataBytes = 64 * 1024;
    public const int MaxIdempotencyKeyLength = 128;

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    private static partial Regex DnsLabel();

    [GeneratedRegex("^[a-zA-Z0-9]([a-zA-Z0-9._/-]{0,62})$")]
    private static partial Regex LabelKey();

    [GeneratedRegex("^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$")]
    private static partial Regex ResourceName();

    public static void Validate(CreateVmRequest request)
    {
        RequireName(request.Name, "name");
        if (string.IsNullOrEmpty(request.Flavor))
        {
            throw ApiException.Invalid("flavor is required.");
        }
        RequireResourceName(request.Flavor, "flavor");
        if (request.Image.Length > 0)
        {
            RequireResourceName(request.Image, "image");
        }
        if (request.Snapshot.Length > 0 && request.Image.Length > 0)
        {
            throw ApiException.Invalid("Give image or snapshot, not both.");
        }
        if (request.Labels.Count > MaxLabels)
        {
            throw ApiException.Invalid($"labels has {request.Labels.Count} entries; at most {MaxLabels} are allowed.");
        }
        foreach (var (key, value) in request.Labels)
        {
            RequireLabel(key, value);
        }
        if (System.Text.Encoding.UTF8.GetByteCount(request.UserData) > MaxUserDataBytes)
        {
            throw ApiException.Invalid($"user_data is larger than {MaxUserDataBytes} bytes.");
        }
    }

    public static void RequireLabel(string key, string value)
    {
        if (!LabelKey().IsMatch(key))
        {
            throw ApiException.Invalid($"label key '{Truncate(key)}' is invalid: 1-63 letters, digits, '.', '_', '/' or '-', starting with a letter or digit.");
        }
        if (value.Length > 63 || value.Any(char.IsControl))
        {
            throw ApiException.Invalid($"label '{key}' has a value longer than 63 characters or with control characters.");
        }
    }

    public static void RequireName(string name, string field)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw ApiException.Invalid($"{field} is required.");
        }
        if (name.Length > 63)
        {
            throw ApiException.Invalid($"{field} is {name.Length} characters long; at most 63 are allowed.");
        }
        if (!DnsLabel().IsMatch(name))
        {
            throw ApiException.Invalid($"{field} '{name}' is invalid: use lowercase letters, digits and '-', starting and ending with a letter or digit.");
        }
    }

    public static void RequireResourceName(string value, string field)
    {
        if (!ResourceName().IsMatch(value))
        {
            throw ApiException.Invalid($"{field} '{Truncate(value)}' is invalid: 1-64 letters, digits, '.', '_' or '-'.");
        }
    }

    public static Guid RequireId(string id, string what)
        => Guid.TryParse(id, out var guid) ? guid : throw ApiException.NotFound(what, Truncate(id));

    public static void RequireIdempotencyKey(string? key)
    {
        if (key is not null && (key.Length is 0 or > MaxIdempotencyKeyLength || key.Any(c => c is < '!' or > '~')))
        {
            throw ApiException.Invalid($"Idempotency-Key must be 1-{MaxIdempotencyKeyLength} printable ASCII characters.");
        }
    }

    private static string Truncate(string value) => value.Length <= 64 ? value : value[..64] + "...";
}
