using System.Collections.Concurrent;

namespace Cloud.Grpc.Tests.Support;

/// <summary>
/// Lets tests await what server handlers observed, keyed by the request's message, instead of
/// sleeping: handlers report when they start and how they end, and can be held at a gate.
/// </summary>
internal sealed class CallProbe
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<string, TaskCompletionSource<ServerObservation>> _results = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _started = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _gates = new();

    public void Report(string key, ServerObservation observation) => Result(key).TrySetResult(observation);

    public void Started(string key) => Start(key).TrySetResult();

    public Task<ServerObservation> WhenReported(string key) => Result(key).Task.WaitAsync(Patience);

    public Task WhenStarted(string key) => Start(key).Task.WaitAsync(Patience);

    /// <summary>Makes the Wait handler for this key block, deaf to cancellation, until released.</summary>
    public Action HoldAtGate(string key)
    {
        var gate = _gates.GetOrAdd(key, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        return () => gate.TrySetResult();
    }

    public Task? TryGetGate(string key) => _gates.TryGetValue(key, out var gate) ? gate.Task : null;

    private TaskCompletionSource<ServerObservation> Result(string key)
        => _results.GetOrAdd(key, _ => new TaskCompletionSource<ServerObservation>(TaskCreationOptions.RunContinuationsAsynchronously));

    private TaskCompletionSource Start(string key)
        => _started.GetOrAdd(key, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
}
