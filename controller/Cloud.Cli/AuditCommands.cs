using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using Cloud.Contracts.Compute.V1;
using Spectre.Console;

namespace Cloud.Cli;

/// <summary>cloudctl audit list: the audit trail (operators see every tenant's; a tenant's tokens their own).</summary>
internal static partial class Commands
{
    private const int AuditPageSize = 500;

    private static Command AuditCommands(IAnsiConsole console)
    {
        var audit = new Command("audit", "The audit trail: every mutating call, refused ones too");
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant's events (operators)" };
        var actor = new Option<string?>("--actor") { Description = "Only this caller's: token:<id>, a token id, operator, node or anonymous" };
        var action = new Option<string?>("--action") { Description = "Only actions starting with this, e.g. 'POST /v1/vms' or 'cloud.compute.v1.Compute/'" };
        var since = new Option<string?>("--since") { Description = "From this time on: RFC 3339 (2026-12-08T00:00:00Z) or an age such as 30m, 2h, 7d" };
        var until = new Option<string?>("--until") { Description = "Before this time: RFC 3339 or an age" };
        var result = new Option<string?>("--result") { Description = "ok, client_error, server_error or denied (401, 403, 429)" };
        var limit = new Option<int>("--limit") { Description = "At most this many events, newest first (default 100)", DefaultValueFactory = _ => 100 };
        var list = new Command("list", "List audit events, newest first") { tenant, actor, action, since, until, result, limit };
        list.SetAction(async (parse, ct) =>
        {
            var max = parse.GetValue(limit);
            if (max < 1)
            {
                throw new CliException("--limit must be at least 1.");
            }
            var filters = new List<string>();
            AddFilter(filters, "tenant", parse.GetValue(tenant));
            AddFilter(filters, "actor", parse.GetValue(actor));
            AddFilter(filters, "action", parse.GetValue(action));
            AddFilter(filters, "since", AuditTime(parse.GetValue(since), "--since"));
            AddFilter(filters, "until", AuditTime(parse.GetValue(until), "--until"));
            AddFilter(filters, "result", parse.GetValue(result));
            using var api = Api(parse);
            var response = new ListAuditEventsResponse();
            var token = "";
            do
            {
                var size = Math.Min(AuditPageSize, max - response.Events.Count);
                var query = string.Join("&", [.. filters, $"page_size={size}", $"page_token={Uri.EscapeDataString(token)}"]);
                var page = await api.GetAsync<ListAuditEventsResponse>($"v1/audit?{query}", ct);
                response.Events.AddRange(page.Events);
                token = page.NextPageToken;
            }
            while (token.Length > 0 && response.Events.Count < max);
            response.NextPageToken = token;
            Print(console, parse, response, response.Events, ["TIME", "ACTOR", "ROLE", "TENANT", "ACTION", "TARGET", "STATUS", "SOURCE"],
                e => [e.Time?.ToDateTimeOffset().ToString("u", CultureInfo.InvariantCulture) ?? "", ActorLabel(e), e.Role, e.Tenant, e.Action, e.TargetId,
                      e.HasGrpcStatus ? $"{e.Status} (grpc {e.GrpcStatus})" : Str(e.Status), e.SourceAddress]);
        });
        audit.Subcommands.Add(list);
        return audit;
    }

    private static void AddFilter(List<string> filters, string name, string? value)
    {
        if (!string.IsNullOrEmpty(value))
        {
            filters.Add($"{name}={Uri.EscapeDataString(value)}");
        }
    }

    private static string ActorLabel(AuditEvent e) => e.ActorName.Length > 0 ? $"{e.Actor} ({e.ActorName})" : e.Actor;

    /// <summary>An age (30m, 2h, 7d) becomes the time that long ago; anything else goes to the server, which checks it.</summary>
    internal static string? AuditTime(string? value, string option)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }
        if (AgePattern().Match(value) is not { Success: true } age)
        {
            return value;
        }
        if (!int.TryParse(age.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var amount))
        {
            throw new CliException($"{option} '{value}' is too large.");
        }
        var span = age.Groups[2].Value switch
        {
            "s" => TimeSpan.FromSeconds(amount),
            "m" => TimeSpan.FromMinutes(amount),
            "h" => TimeSpan.FromHours(amount),
            _ => TimeSpan.FromDays(amount),
        };
        var now = DateTimeOffset.UtcNow;
        if (span > now - DateTimeOffset.UnixEpoch)
        {
            throw new CliException($"{option} '{value}' reaches before 1970.");
        }
        return (now - span).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
    }

    [GeneratedRegex("^([0-9]{1,6})([smhd])$")]
    private static partial Regex AgePattern();
}
