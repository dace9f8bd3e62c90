using System.CommandLine;
using System.Globalization;
using Cloud.Contracts.Compute.V1;
using Spectre.Console;

namespace Cloud.Cli;

/// <summary>cloudctl capacity: what is used and free, what a drain or a lost zone would do, what fits, when it runs full.</summary>
internal static partial class Commands
{
    private static Command CapacityCommand(IAnsiConsole console)
    {
        var drain = new Option<string[]>("--drain") { Description = "A node whose VMs must go elsewhere (repeatable)", AllowMultipleArgumentsPerToken = false };
        var loseZone = new Option<string[]>("--lose-zone") { Description = "An availability zone lost with its VMs (repeatable)", AllowMultipleArgumentsPerToken = false };
        var flavor = new Option<string[]>("--flavor") { Description = "How many more of this flavor fit (repeatable; default every flavor)", AllowMultipleArgumentsPerToken = false };
        var trendDays = new Option<int>("--trend-days") { Description = "Days of history the growth is measured over (default 7)" };
        var capacity = new Command("capacity", "Capacity: used, free, what fits, what a drain or a lost zone would do, when it runs full (operator)")
        {
            drain, loseZone, flavor, trendDays,
        };
        capacity.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var request = new PlanCapacityRequest { TrendDays = parse.GetValue(trendDays) };
            request.DrainNodes.Add(parse.GetValue(drain) ?? []);
            request.LoseZones.Add(parse.GetValue(loseZone) ?? []);
            request.Flavors.Add(parse.GetValue(flavor) ?? []);
            var plan = await api.PostAsync<CapacityPlan>("v1/capacity/plan", request, null, ct);
            if (parse.GetValue(OutputOption) == "json")
            {
                console.Profile.Out.Writer.WriteLine(JsonOutput.Format(plan));
                return;
            }
            var writer = console.Profile.Out.Writer;
            writer.WriteLine($"{plan.Nodes} nodes take VMs; growth over the last {plan.TrendDays} days");
            Print(console, parse, plan, plan.Resources, ["RESOURCE", "CAPACITY", "USED", "FREE", "GROWTH/DAY", "FULL IN (DAYS)"],
                r => [r.ResourceClass, Str(r.Capacity), Str(r.Used), Str(r.Free), r.GrowthPerDay.ToString("0.###", CultureInfo.InvariantCulture),
                      r.HasDaysUntilFull ? r.DaysUntilFull.ToString("0.#", CultureInfo.InvariantCulture) : "-"]);
            if (plan.Displaced > 0)
            {
                writer.WriteLine($"{plan.Displaced} VMs displaced, {plan.PlacedAgain} placed again, {plan.Unplaced.Count} without room");
            }
            if (plan.Unplaced.Count > 0)
            {
                Print(console, parse, plan, plan.Unplaced, ["ID", "NAME", "NODE", "WHY NOT"], u => [u.Id, u.Name, u.Node, u.Reason]);
            }
            Print(console, parse, plan, plan.Fits, ["FLAVOR", "MORE THAT FIT"], f => [f.Flavor, Str(f.Count)]);
        });
        return capacity;
    }
}
