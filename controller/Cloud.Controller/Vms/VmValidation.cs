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
        if (request.Snapshot.Length > 0 && request.Image.Length > 0)
        {
            throw ApiException.Invalid("Give image or snapshot, not both.");
        }
        ValidateTemplate(request.Flavor, request.Image, request.Labels, request.UserData);
    }

    /// <summary>
    /// A batch: the template as for one VM, a count the scheduler takes in one batch, a minimum
    /// within it, and a prefix that leaves room for the longest name, prefix-count.
    /// </summary>
    public static void Validate(CreateVmsRequest request, int maxBatchSize)
    {
        if (request.Count < 1 || request.Count > maxBatchSize)
        {
            throw ApiException.Invalid($"count must be between 1 and {maxBatchSize}, not {request.Count}.");
        }
        if (request.Minimum < 0 || request.Minimum > request.Count)
        {
            throw ApiException.Invalid($"minimum must be between 1 and count ({request.Count}), or 0 for all; not {request.Minimum}.");
        }
        RequireName(request.NamePrefix, "name_prefix");
        var longest = BatchVmName(request.NamePrefix, request.Count);
        if (longest.Length > 63)
        {
            throw ApiException.Invalid($"name_prefix is too long for {request.Count} VMs: '{Truncate(longest)}' would exceed 63 characters.");
        }
        ValidateTemplate(request.Flavor, request.Image, request.Labels, request.UserData);
    }

    /// <summary>The name of the <paramref name="index"/>th VM (1-based) of a batch.</summary>
    public static string BatchVmName(string prefix, int index) => $"{prefix}-{index.ToString(System.Globalization.CultureInfo.InvariantCulture)}";

    /// <summary>
    /// What one VM and a batch share: flavor, image, labels (placement hints among them) and user
    /// data. Both creates run it before an operation or a row exists, so they refuse alike.
    /// </summary>
    private static void ValidateTemplate(string flavor, string image, IReadOnlyDictionary<string, string> labels, string userData)
    {
        if (string.IsNullOrEmpty(flavor))
        {
            throw ApiException.Invalid("flavor is required.");
        }
        RequireResourceName(flavor, "flavor");
        if (image.Length > 0)
        {
            RequireResourceName(image, "image");
        }
        if (labels.Count > MaxLabels)
        {
            throw ApiException.Invalid($"labels has {labels.Count} entries; at most {MaxLabels} are allowed.");
        }
        foreach (var (key, value) in labels)
        {
            RequireLabel(key, value);
        }
        if (System.Text.Encoding.UTF8.GetByteCount(userData) > MaxUserDataBytes)
        {
            throw ApiException.Invalid($"user_data is larger than {MaxUserDataBytes} bytes.");
        }
        if (!Scheduling.PlacementHints.TryParse(labels, out _, out var hintError))
        {
            throw ApiException.Invalid(hintError!);
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
