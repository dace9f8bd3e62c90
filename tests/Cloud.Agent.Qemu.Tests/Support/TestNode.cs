using System.Threading.Channels;
using Cloud.Contracts.Agent.V1;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cloud.Agent.Qemu.Tests.Support;

/// <summary>
/// A QemuHypervisor over a throwaway DataDirectory, as one node's agent would run it. The folder
/// path is kept short: QMP sockets live in it and unix socket paths are limited to 107 bytes.
/// Disposing deletes every VM it still has, so no QEMU outlives a test.
/// </summary>
internal sealed class TestNode : IAsyncDisposable
{
    private static int _nextNode;
    private readonly List<QemuHypervisor> _instances = [];

    private readonly TimeProvider _time;

    public TestNode(string listenAddress = "127.0.0.2", Action<QemuOptions>? configure = null, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        Root = Path.Combine("/tmp", "cqt-" + Guid.NewGuid().ToString("N")[..8]);
        var number = Interlocked.Increment(ref _nextNode);
        Options = new QemuOptions
        {
            DataDirectory = Path.Combine(Root, "d"),
            Accelerator = "tcg",
            ListenAddress = listenAddress,
            // Never a fixed port: other test runs share this machine.
            MigrationPortRange = "ephemeral",
            ColdResizeStopTimeout = TimeSpan.FromSeconds(1),
            NodeName = "node-" + number,
        };
        configure?.Invoke(Options);
        Hypervisor = NewInstance();
    }

    public string Root { get; }

    public QemuOptions Options { get; }

    public QemuHypervisor Hypervisor { get; private set; }

    /// <summary>A further instance over the same DataDirectory: an agent restart.</summary>
    public QemuHypervisor NewInstance()
    {
        var instance = new QemuHypervisor(Options, NullLoggerFactory.Instance, _time);
        _instances.Add(instance);
        return instance;
    }

    public void Replace(QemuHypervisor instance) => Hypervisor = instance;

    public string VmDirectory(string vmId) => Path.Combine(Options.DataDirectory, "vms", vmId);

    public string SerialLog(string vmId) => Path.Combine(VmDirectory(vmId), "serial.log");

    public async Task<Vm> GetVmAsync(string vmId)
        => (await Hypervisor.ListVmsAsync(CancellationToken.None)).Single(v => v.VmId == vmId);

    /// <summary>Records the node's VM events from now on.</summary>
    public EventRecorder RecordEvents() => new(Hypervisor);

    public async ValueTask DisposeAsync()
    {
        try
        {
            foreach (var vm in await Hypervisor.ListVmsAsync(CancellationToken.None))
            {
                await Hypervisor.DeleteVmAsync(vm.VmId, CancellationToken.None);
            }
        }
        finally
        {
            foreach (var instance in _instances)
            {
                await instance.DisposeAsync();
            }
            if (Directory.Exists(Root))
            {
                Directory.Delete(Root, recursive: true);
            }
        }
    }
}

/// <summary>Collects the events of WatchEventsAsync in the background, and waits for one with a deadline.</summary>
internal sealed class EventRecorder : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<VmEvent> _events = [];
    private readonly Channel<VmEvent> _signal = Channel.CreateUnbounded<VmEvent>();
    private readonly Task _pump;

    public EventRecorder(QemuHypervisor hypervisor)
    {
        var subscribed = new TaskCompletionSource();
        _pump = Task.Run(async () =>
        {
            try
            {
                var stream = hypervisor.WatchEventsAsync(_stop.Token).GetAsyncEnumerator(_stop.Token);
                // The watcher registers on the first MoveNext; start it before the test acts.
                var first = stream.MoveNextAsync();
                subscribed.SetResult();
                while (await first)
                {
                    lock (_events)
                    {
                        _events.Add(stream.Current);
                    }
                    _signal.Writer.TryWrite(stream.Current);
                    first = stream.MoveNextAsync();
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
        subscribed.Task.Wait();
    }

    public IReadOnlyList<VmEvent> Events
    {
        get
        {
            lock (_events)
            {
                return [.. _events];
            }
        }
    }

    public async Task<VmEvent> WaitForAsync(Func<VmEvent, bool> predicate, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        lock (_events)
        {
            if (_events.FirstOrDefault(predicate) is { } seen)
            {
                return seen;
            }
        }
        try
        {
            while (true)
            {
                var next = await _signal.Reader.ReadAsync(deadline.Token);
                if (predicate(next))
                {
                    return next;
                }
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"No matching event within {timeout.TotalSeconds} s; saw: {string.Join(", ", Events.Select(e => $"{e.VmId}:{e.State}({e.Reason})"))}");
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _pump;
        _stop.Dispose();
    }
}
