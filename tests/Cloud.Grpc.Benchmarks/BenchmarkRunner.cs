namespace Cloud.Grpc.Benchmarks;

/// <summary>Runs the figures in order and prints each as "metric [label]: value unit".</summary>
internal static class BenchmarkRunner
{
    public static async Task<int> RunAsync(string[] args)
    {
        BenchmarkOptions options;
        try
        {
            options = BenchmarkOptions.Parse(args);
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync(e.Message);
            return 2;
        }
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        var report = new Reporter(options.Label);

        // A fresh agent for the RSS figures, so that they are not those of an agent that has just
        // served tens of thousands of calls; the unary figures then come from the same agent.
        await Console.Error.WriteLineAsync("# grpc: fake-backend agent (RSS, unary)");
        await using (var agent = await AgentProcess.StartFakeAsync("127.0.0.2", cancel.Token))
        {
            await MemoryBenchmark.RunAsync(agent, options, report, cancel.Token);
            await UnaryBenchmark.RunAsync(agent.Client, options, report, cancel.Token);
            report.Add("grpc.agent_rss.after_unary", agent.StatusKb("VmRSS:") / 1024.0, "MB");
        }
        await Console.Error.WriteLineAsync("# grpc: server streaming (ReadImage)");
        await StreamingBenchmark.RunAsync(options, report, cancel.Token);
        return 0;
    }
}

/// <summary>Prints one figure a line, "metric [label]: value unit", the form deploy/dev/bench.sh parses.</summary>
internal sealed class Reporter(string label)
{
    public void Add(string metric, double value, string unit)
        => Console.WriteLine(FormattableString.Invariant($"{metric} [{label}]: {value:0.##} {unit}"));
}
