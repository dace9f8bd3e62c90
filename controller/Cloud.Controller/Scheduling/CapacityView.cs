using Cloud.Controller.Data;

namespace Cloud.Controller.Scheduling;

/// <summary>
/// The scheduler's in-memory copy of every node's capacity. Readers take the node array
/// without a lock; a placement replaces one element (a reference write, atomic), so that
/// applying a claim costs O(1) rather than a copy of 10,000 nodes. A reader may see a node a
/// moment old: the claim's capacity check in PostgreSQL catches that.
/// </summary>
/// <remarks>
/// Every node carries the epoch of its last load from the database. A committed claim is
/// added to the node only if the node has not been loaded since the claim was decided
/// (<see cref="EpochOf"/> then, <see cref="Apply"/> after the commit): a load after the commit
/// already holds the claim, and adding it again would hide capacity that is free.
/// <para>
/// The view is loaded whole once (<see cref="Replace"/>), then kept current by checks
/// (<see cref="Changed"/>, <see cref="MarkChecked"/>): the scheduler reads every node's
/// generation and state and reloads only the nodes that differ.
/// </para>
/// </remarks>
internal sealed class CapacityView
{
    private readonly Lock _gate = new();
    private volatile Snapshot _snapshot = new([], [], new Dictionary<Guid, int>(), DateTimeOffset.MinValue, DateTimeOffset.MinValue);
    private long _epoch;
    private long _expirations;

    private sealed record Snapshot(NodeCapacity[] Nodes, long[] Epochs, Dictionary<Guid, int> Index, DateTimeOffset LoadedAt, DateTimeOffset CheckedAt);

    public IReadOnlyList<NodeCapacity> Nodes => _snapshot.Nodes;

    /// <summary>When the view was last loaded whole; <see cref="DateTimeOffset.MinValue"/> before the first load.</summary>
    public DateTimeOffset LoadedAt => _snapshot.LoadedAt;

    /// <summary>When the view was last found current (loaded or checked); <see cref="DateTimeOffset.MinValue"/> once <see cref="Expire"/>d.</summary>
    public DateTimeOffset CheckedAt => _snapshot.CheckedAt;

    /// <summary>How many times the view was expired: a load or check that began before an expiry does not count as current.</summary>
    public long Expirations => Interlocked.Read(ref _expirations);

    public int Count => _snapshot.Nodes.Length;

    public NodeCapacity? Find(Guid nodeId)
    {
        var snapshot = _snapshot;
        return snapshot.Index.TryGetValue(nodeId, out var i) ? snapshot.Nodes[i] : null;
    }

    /// <summary>The epoch of the node's last load, or -1 when the view does not hold it.</summary>
    public long EpochOf(Guid nodeId)
    {
        var snapshot = _snapshot;
        return snapshot.Index.TryGetValue(nodeId, out var i) ? Volatile.Read(ref snapshot.Epochs[i]) : -1;
    }

    public NodeCapacity? FindByName(string name)
        => Array.Find(_snapshot.Nodes, n => string.Equals(n.Name, name, StringComparison.Ordinal));

    /// <summary>Replaces every node with a full load begun when <see cref="Expirations"/> was <paramref name="expirationsBefore"/>.</summary>
    public void Replace(IReadOnlyList<NodeCapacity> nodes, DateTimeOffset loadedAt, long expirationsBefore)
    {
        var array = nodes.ToArray();
        var index = new Dictionary<Guid, int>(array.Length);
        for (var i = 0; i < array.Length; i++)
        {
            index[array[i].NodeId] = i;
        }
        lock (_gate)
        {
            var epoch = ++_epoch;
            var checkedAt = _expirations == expirationsBefore ? loadedAt : DateTimeOffset.MinValue;
            _snapshot = new Snapshot(array, [.. array.Select(_ => epoch)], index, loadedAt, checkedAt);
        }
    }

    /// <summary>Makes the next use check the view against the database before deciding.</summary>
    public void Expire()
    {
        lock (_gate)
        {
            _expirations++;
            _snapshot = _snapshot with { CheckedAt = DateTimeOffset.MinValue };
        }
    }

    /// <summary>Records a check begun when <see cref="Expirations"/> was <paramref name="expirationsBefore"/>; one overtaken by an expiry leaves the view expired.</summary>
    public void MarkChecked(DateTimeOffset checkedAt, long expirationsBefore)
    {
        lock (_gate)
        {
            if (_expirations == expirationsBefore)
            {
                _snapshot = _snapshot with { CheckedAt = checkedAt };
            }
        }
    }

    /// <summary>
    /// The nodes whose copy here is not what <paramref name="versions"/> (every node in the
    /// database) says: another generation, state or schedulable flag, new nodes, and nodes gone.
    /// </summary>
    public List<Guid> Changed(IReadOnlyList<NodeVersion> versions)
    {
        var snapshot = _snapshot;
        var changed = new List<Guid>();
        var held = 0;
        foreach (var version in versions)
        {
            if (!snapshot.Index.TryGetValue(version.NodeId, out var i))
            {
                changed.Add(version.NodeId);
                continue;
            }
            held++;
            var node = snapshot.Nodes[i];
            if (node.Generation != version.Generation || node.Schedulable != version.Schedulable
                || !string.Equals(node.State, version.State, StringComparison.Ordinal))
            {
                changed.Add(version.NodeId);
            }
        }
        if (held < snapshot.Nodes.Length)
        {
            var present = versions.Select(v => v.NodeId).ToHashSet();
            changed.AddRange(snapshot.Nodes.Select(n => n.NodeId).Where(id => !present.Contains(id)));
        }
        return changed;
    }

    /// <summary>Replaces one node (null removes it: rare, so it rebuilds the index).</summary>
    public void Set(Guid nodeId, NodeCapacity? node)
    {
        lock (_gate)
        {
            var snapshot = _snapshot;
            var epoch = ++_epoch;
            if (snapshot.Index.TryGetValue(nodeId, out var i))
            {
                if (node is not null)
                {
                    snapshot.Nodes[i] = node;
                    Volatile.Write(ref snapshot.Epochs[i], epoch);
                    return;
                }
                var keep = Enumerable.Range(0, snapshot.Nodes.Length).Where(k => k != i).ToArray();
                var rest = keep.Select(k => snapshot.Nodes[k]).ToArray();
                _snapshot = snapshot with
                {
                    Nodes = rest,
                    Epochs = [.. keep.Select(k => snapshot.Epochs[k])],
                    Index = rest.Select((n, k) => (n.NodeId, k)).ToDictionary(x => x.NodeId, x => x.k),
                };
            }
            else if (node is not null)
            {
                NodeCapacity[] grown = [.. snapshot.Nodes, node];
                var index = new Dictionary<Guid, int>(snapshot.Index) { [nodeId] = grown.Length - 1 };
                _snapshot = snapshot with { Nodes = grown, Epochs = [.. snapshot.Epochs, epoch], Index = index };
            }
        }
    }

    /// <summary>
    /// Applies a committed claim decided when the node was at <paramref name="decidedEpoch"/>:
    /// its usage is added and the generation bumped, unless the node was loaded since.
    /// </summary>
    /// <returns>Whether the claim was added.</returns>
    public bool Apply(Guid nodeId, IReadOnlyList<PlacementRequest> placed, long decidedEpoch)
    {
        lock (_gate)
        {
            var snapshot = _snapshot;
            if (!snapshot.Index.TryGetValue(nodeId, out var i) || snapshot.Epochs[i] != decidedEpoch)
            {
                return false;
            }
            var node = snapshot.Nodes[i];
            snapshot.Nodes[i] = WithUsage(node, placed) with { Generation = node.Generation + 1 };
            return true;
        }
    }

    /// <summary>The node with the requests' resources added to its usage, generation unchanged.</summary>
    public static NodeCapacity WithUsage(NodeCapacity node, IReadOnlyList<PlacementRequest> requests)
    {
        var used = new Dictionary<string, long>(node.Used, StringComparer.Ordinal);
        foreach (var request in requests)
        {
            for (var c = 0; c < request.Classes.Length; c++)
            {
                used[request.Classes[c]] = used.GetValueOrDefault(request.Classes[c]) + request.Amounts[c];
            }
        }
        return node with { Used = used };
    }
}
