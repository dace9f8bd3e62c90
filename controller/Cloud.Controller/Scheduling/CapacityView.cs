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
/// </remarks>
internal sealed class CapacityView
{
    private readonly Lock _gate = new();
    private volatile Snapshot _snapshot = new([], [], new Dictionary<Guid, int>(), DateTimeOffset.MinValue);
    private long _epoch;

    private sealed record Snapshot(NodeCapacity[] Nodes, long[] Epochs, Dictionary<Guid, int> Index, DateTimeOffset LoadedAt);

    public IReadOnlyList<NodeCapacity> Nodes => _snapshot.Nodes;

    public DateTimeOffset LoadedAt => _snapshot.LoadedAt;

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

    public void Replace(IReadOnlyList<NodeCapacity> nodes, DateTimeOffset loadedAt)
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
            _snapshot = new Snapshot(array, [.. array.Select(_ => epoch)], index, loadedAt);
        }
    }

    /// <summary>Forces a full reload on the next use.</summary>
    public void Expire()
    {
        lock (_gate)
        {
            _snapshot = _snapshot with { LoadedAt = DateTimeOffset.MinValue };
        }
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
                _snapshot = new Snapshot(rest, [.. keep.Select(k => snapshot.Epochs[k])],
                    rest.Select((n, k) => (n.NodeId, k)).ToDictionary(x => x.NodeId, x => x.k), snapshot.LoadedAt);
            }
            else if (node is not null)
            {
                NodeCapacity[] grown = [.. snapshot.Nodes, node];
                var index = new Dictionary<Guid, int>(snapshot.Index) { [nodeId] = grown.Length - 1 };
                _snapshot = new Snapshot(grown, [.. snapshot.Epochs, epoch], index, snapshot.LoadedAt);
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
