using Cloud.Grpc.Benchmarks;

return await BenchmarkRunner.RunAsync(args);
