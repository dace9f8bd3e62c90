using Cloud.Agent.Qemu.Benchmarks;

return await BenchmarkRunner.RunAsync(args);
