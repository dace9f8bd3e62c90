using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
using Cloud.Controller.Vms;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Npgsql;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Snapshots;

/// <summary>What one round of the audit changed.</summary>
internal sealed record SnapshotAuditResult(int Lost, int Found, int NodesUnanswered);

/// <summary>
/// Keeps the ledger's snapshots true to the nodes: every <see cref="SnapshotAuditOptions.AuditInterval"/>,
/// each node that the ledger says holds READY or LOST snapshots is judged (down or removed: its READY
/// snapshots are LOST) or asked what it holds (ListVms, Vm.snapshot_ids), and the rules of
/// <see cref="SnapshotAuditPlan"/> applied. Every write is conditional on the row being as it was
/// read (same state, same node, no move of the VM begun), so replicas may audit at once and a
/// migration that lands meanwhile wins.
/// </summary>
internal sealed partial class SnapshotAudit(
    NpgsqlDataSource dataSource,
    AgentConnections agents,
    IOptions<SnapshotAuditOptions> options,
    TimeProvider time,
    ILogger<SnapshotAudit> logger) : BackgroundService
{
    private const string ReadSnapshots = """
        SELECT s.id, s.vm_id, s.state, s.node_id, v.node_id,
               EXISTS (SELECT 1 FROM operations AS o
                        WHERE o.target_id = s.vm_id::text AND o.state IN ('PENDING', 'RUNNING') AND o.kind IN ('vm.migrate', 'vm.resize'))
          FROM snapshots AS s
          JOIN vms AS v ON v.id = s.vm_id
         WHERE s.state IN ('READY', 'LOST')
        """;

    private sealed record NodeRow(Guid Id, string Name, string Address, bool Up, DateTimeOffset? LastHeartbeatAt);

    /// <summary>One round; safe to run at any time, on any number of replicas.</summary>
    public async Task<SnapshotAuditResult> AuditOnceAsync(CancellationToken cancellationToken)
    {
        var snapshots = await ReadSnapshotsAsync(cancellationToken);
        if (snapshots.Count == 0)
        {
            return new SnapshotAuditResult(0, 0, 0);
        }
        var rows = await ReadNodesAsync([.. snapshots.Where(s => s.NodeId is not null).Select(s => s.NodeId!.Value).Distinct()], cancellationToken);
        var nodes = new System.Collections.Concurrent.ConcurrentDictionary<Guid, AuditedNode>();
        var unanswered = 0;
        var asked = rows.Where(n => n.Up && snapshots.Any(s => s.NodeId == n.Id && !s.Moving)).ToList();
        foreach (var row in rows.Except(asked))
        {
            nodes[row.Id] = new AuditedNode(row.Id, row.Name, row.Up, row.LastHeartbeatAt, null);
        }
        await Parallel.ForEachAsync(asked, new ParallelOptions { MaxDegreeOfParallelism = options.Value.ConcurrentNodes, CancellationToken = cancellationToken }, async (row, ct) =>
        {
            var expected = snapshots.Where(s => s.NodeId == row.Id).Select(s => s.VmId).ToHashSet();
            var held = await AskAsync(row, expected, ct);
            if (held is null)
            {
                Interlocked.Increment(ref unanswered);
            }
            nodes[row.Id] = new AuditedNode(row.Id, row.Name, row.Up, row.LastHeartbeatAt, held);
        });

        var changes = SnapshotAuditPlan.Decide(snapshots, nodes);
        if (changes.Count == 0)
        {
            return new SnapshotAuditResult(0, 0, unanswered);
        }
        int lost = 0, found = 0;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var now = time.GetUtcNow();
        foreach (var change in changes)
        {
            if (change.ToState == SnapshotStates.Lost)
            {
                if (await SnapshotRows.MarkLostAsync(transaction, change.SnapshotId, change.NodeId, change.Reason!, now, cancellationToken))
                {
                    lost++;
                    Log.Lost(logger, change.SnapshotId, change.Reason!);
                }
            }
            else if (await SnapshotRows.MarkFoundAsync(transaction, change.SnapshotId, change.NodeId!.Value, now, cancellationToken))
            {
                found++;
                Log.Found(logger, change.SnapshotId, nodes[change.NodeId.Value].Name);
            }
        }
        await transaction.CommitAsync(cancellationToken);
        return new SnapshotAuditResult(lost, found, unanswered);
    }

    /// <summary>
    /// The snapshots the node holds per VM (32-hex ids), or null when it did not answer. A VM the
    /// ledger expects snapshots of that the node lists with none is asked for its snapshots too:
    /// an agent that predates Vm.snapshot_ids leaves it empty, and emptiness alone would make
    /// every snapshot on it LOST.
    /// </summary>
    private async Task<IReadOnlyDictionary<string, IReadOnlySet<string>>?> AskAsync(NodeRow node, HashSet<Guid> expectedVms, CancellationToken cancellationToken)
    {
        var agent = agents.For(node.Name, node.Address);
        try
        {
            var listed = await agent.CallAsync((c, o) => c.ListVmsAsync(new AgentV1.ListVmsRequest(), o), cancellationToken);
            var held = new Dictionary<string, IReadOnlySet<string>>(StringComparer.Ordinal);
            foreach (var vm in listed.Vms)
            {
                IReadOnlySet<string> ids = vm.SnapshotIds.ToHashSet(StringComparer.Ordinal);
                if (ids.Count == 0 && Guid.TryParseExact(vm.VmId, "N", out var vmId) && expectedVms.Contains(vmId))
                {
                    var snapshots = await agent.CallAsync((c, o) => c.ListSnapshotsAsync(new AgentV1.VmRef { VmId = vm.VmId }, o), cancellationToken);
                    ids = snapshots.Snapshots.Select(s => s.SnapshotId).ToHashSet(StringComparer.Ordinal);
                }
                held[vm.VmId] = ids;
            }
            return held;
        }
        catch (RpcException e)
        {
            // Not an answer: a node that cannot be asked is judged by its state (DOWN after its
            // heartbeats stop), not by one failed call.
            Log.NodeUnanswered(logger, node.Name, e.Status.Detail);
            return null;
        }
    }

    private async Task<List<AuditedSnapshot>> ReadSnapshotsAsync(CancellationToken cancellationToken)
    {
        var snapshots = new List<AuditedSnapshot>();
        await using var command = dataSource.CreateCommand(ReadSnapshots);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            snapshots.Add(new AuditedSnapshot(reader.GetGuid(0), reader.GetGuid(1), reader.GetString(2),
                reader.IsDBNull(3) ? null : reader.GetGuid(3), reader.IsDBNull(4) ? null : reader.GetGuid(4), reader.GetBoolean(5)));
        }
        return snapshots;
    }

    private async Task<List<NodeRow>> ReadNodesAsync(Guid[] ids, CancellationToken cancellationToken)
    {
        var nodes = new List<NodeRow>();
        await using var command = dataSource.CreateCommand("SELECT id, name, address, state, last_heartbeat_at FROM nodes WHERE id = ANY($1)");
        command.Parameters.Add(new NpgsqlParameter { Value = ids });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            nodes.Add(new NodeRow(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetString(3) == NodeStates.Up,
                reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4)));
        }
        return nodes;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.AuditInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await AuditOnceAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.RoundFailed(logger, e);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 8001, Level = LogLevel.Warning, Message = "Snapshot {SnapshotId} is LOST: {Reason}")]
        public static partial void Lost(ILogger logger, Guid snapshotId, string reason);

        [LoggerMessage(EventId = 8002, Level = LogLevel.Information, Message = "Snapshot {SnapshotId} is READY again: node {NodeName} reports its data")]
        public static partial void Found(ILogger logger, Guid snapshotId, string nodeName);

        [LoggerMessage(EventId = 8003, Level = LogLevel.Warning, Message = "Snapshot audit: node {NodeName} did not answer ({Detail}); its snapshots are judged next round")]
        public static partial void NodeUnanswered(ILogger logger, string nodeName, string detail);

        [LoggerMessage(EventId = 8004, Level = LogLevel.Warning, Message = "A snapshot audit round failed")]
        public static partial void RoundFailed(ILogger logger, Exception exception);
    }
}
