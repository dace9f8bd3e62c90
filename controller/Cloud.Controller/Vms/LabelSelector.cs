using System.Text.Json;
using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Vms;

/// <summary>"key=value,key2=value2": every pair must be among the VM's labels (jsonb containment).</summary>
internal sealed class LabelSelector
{
    private readonly string? _json;

    private LabelSelector(string? json) => _json = json;

    public static LabelSelector Parse(string selector)
    {
        if (selector.Length == 0)
        {
            return new LabelSelector(null);
        }
        if (selector.Length > 1024)
        {
            throw ApiException.Invalid("label_selector is longer than 1024 characters.");
        }
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in selector.Split(','))
        {
            var equals = part.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                throw ApiException.Invalid($"label_selector '{selector}' is invalid: write key=value pairs separated by commas.");
            }
            var key = part[..equals].Trim();
            var value = part[(equals + 1)..].Trim();
            VmValidation.RequireLabel(key, value);
            if (!pairs.TryAdd(key, value))
            {
                throw ApiException.Invalid($"label_selector names '{key}' twice.");
            }
        }
        return new LabelSelector(JsonSerializer.Serialize(pairs, LabelsJson.Options));
    }

    public IQueryable<VmEntity> Apply(IQueryable<VmEntity> vms)
        => _json is null ? vms : vms.Where(v => EF.Functions.JsonContains(v.Labels, _json));
}
