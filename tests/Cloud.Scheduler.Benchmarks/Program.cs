using Cloud.Scheduler.Benchmarks;

// Usage: Cloud.Scheduler.Benchmarks [all|batch|single|latency|packing|memory|capacity|chaos|audit] [--nodes N] [--vms N] [--seconds N] [--profile]
// Prints one "metric: value unit" line per figure; exits non-zero when an invariant is broken.
var name = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal)) ?? "all";
string? Option(string option) => args.SkipWhile(a => a != option).Skip(1).FirstOrDefault();
var settings = new BenchSettings
{
    Nodes = int.TryParse(Option("--nodes"), out var nodes) ? nodes : 10_000,
    Vms = int.TryParse(Option("--vms"), out var vms) ? vms : 200_000,
    Seconds = int.TryParse(Option("--seconds"), out var seconds) ? seconds : 10,
    Profile = args.Contains("--profile"),
};
if (name is not ("all" or "batch" or "single" or "latency" or "packing" or "memory" or "capacity" or "chaos" or "audit" or "place-worker"))
{
    Console.Error.WriteLine($"Unknown benchmark '{name}': all, batch, single, latency, packing, memory, capacity, chaos or audit.");
    return 2;
}
using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};
if (name == "place-worker")
{
    return await ChaosBench.PlaceWorkerAsync(cancellation.Token);
}
if (name == "audit")
{
    return await AuditBench.RunAsync(cancellation.Token);
}
if (name == "chaos")
{
    return await ChaosBench.RunAsync(cancellation.Token);
}
var status = 0;
await using (var bench = await SchedulerBench.StartAsync(settings, cancellation.Token))
{
    status = await bench.RunAsync(name, cancellation.Token);
}
// "all" ends with the crash test, on a cluster of its own.
return name == "all" ? Math.Max(status, await ChaosBench.RunAsync(cancellation.Token)) : status;
