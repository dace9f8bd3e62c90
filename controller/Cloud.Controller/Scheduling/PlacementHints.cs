using System.Text.RegularExpressions;
using Cloud.Controller.Data;

namespace Cloud.Controller.Scheduling;

/// <summary>
/// Scheduling constraints a VM carries as labels under the reserved prefix
/// <c>placement.cloud/</c> (zone, aggregate, hypervisor, require-traits, forbid-traits,
/// server-group), so that every API that creates VMs passes them without a contract of its own.
/// </summary>
internal static partial class PlacementHints
{
    public const string Prefix = "placement.cloud/";
    public const string Zone = Prefix + "zone";
    public const string Aggregate = Prefix + "aggregate";
    public const string Hypervisor = Prefix + "hypervisor";
    public const string RequireTraits = Prefix + "require-traits";
    public const string ForbidTraits = Prefix + "forbid-traits";
    public const string ServerGroup = Prefix + "server-group";

    private static readonly string[] Known = [Zone, Aggregate, Hypervisor, RequireTraits, ForbidTraits, ServerGroup];

    /// <summary>Zone, aggregate and hypervisor names: DNS labels.</summary>
    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    internal static partial Regex Name();

    /// <summary>Traits, as Placement spells them: upper case, digits and '_'.</summary>
    [GeneratedRegex("^[A-Z][A-Z0-9_]{0,62}$")]
    internal static partial Regex Trait();

    /// <summary>Reads the constraints, or says which label is wrong and how.</summary>
    public static bool TryParse(IReadOnlyDictionary<string, string> labels, out PlacementConstraints constraints, out string? error)
    {
        ArgumentNullException.ThrowIfNull(labels);
        constraints = PlacementConstraints.None;
        error = labels.Keys.FirstOrDefault(k => k.StartsWith(Prefix, StringComparison.Ordinal) && !Known.Contains(k)) is { } unknown
            ? $"Label '{unknown}' is not a placement hint; the hints are {string.Join(", ", Known)}."
            : null;
        if (error is not null)
        {
            return false;
        }
        var zone = labels.GetValueOrDefault(Zone);
        var aggregate = labels.GetValueOrDefault(Aggregate);
        var hypervisor = labels.GetValueOrDefault(Hypervisor);
        foreach (var (key, value) in new[] { (Zone, zone), (Aggregate, aggregate), (Hypervisor, hypervisor) })
        {
            if (value is not null && !Name().IsMatch(value))
            {
                error = $"Label '{key}' is '{value}'; it must be a name of lower-case letters, digits and '-'.";
                return false;
            }
        }
        if (!TryTraits(labels, RequireTraits, out var required, out error) || !TryTraits(labels, ForbidTraits, out var forbidden, out error))
        {
            return false;
        }
        if (required.Intersect(forbidden, StringComparer.Ordinal).FirstOrDefault() is { } both)
        {
            error = $"Trait {both} is both required and forbidden.";
            return false;
        }
        Guid? group = null;
        if (labels.GetValueOrDefault(ServerGroup) is { } groupText)
        {
            if (!Guid.TryParse(groupText, out var id) || id == Guid.Empty)
            {
                error = $"Label '{ServerGroup}' is '{groupText}'; it must be a server group's id.";
                return false;
            }
            group = id;
        }
        constraints = new PlacementConstraints
        {
            AvailabilityZone = zone,
            Aggregate = aggregate,
            Hypervisor = hypervisor,
            RequiredTraits = required,
            ForbiddenTraits = forbidden,
            ServerGroupId = group,
        };
        return true;
    }

    private static bool TryTraits(IReadOnlyDictionary<string, string> labels, string key, out string[] traits, out string? error)
    {
        traits = [];
        error = null;
        if (labels.GetValueOrDefault(key) is not { } text)
        {
            return true;
        }
        traits = [.. text.Split(',', StringSplitOptions.TrimEntries).Distinct(StringComparer.Ordinal)];
        if (traits.FirstOrDefault(t => !Trait().IsMatch(t)) is { } bad)
        {
            error = $"Label '{key}' names trait '{bad}'; traits are comma-separated, upper case, digits and '_'.";
            return false;
        }
        return true;
    }

    /// <summary>Checks that a policy name is one of <see cref="ServerGroupPolicies.All"/>.</summary>
    public static bool IsPolicy(string policy) => ServerGroupPolicies.All.Contains(policy);
}
