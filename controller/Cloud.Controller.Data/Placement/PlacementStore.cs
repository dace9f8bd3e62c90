using Npgsql;

namespace Cloud.Controller.Data;

/// <summary>A server group as the scheduler needs it: policy, limit, and members per node.</summary>
internal sealed record ServerGroupSnapshot(
    Guid Id, string ProjectId, string Name, string Policy, int MaxMembers, int Members, IReadOnlyDictionary<Guid, int> MembersPerNode);

/// <summary>
/// The scheduler's reads and writes of server groups and placement decisions, on plain Npgsql
/// inside the claim's transaction: membership is checked under a lock on the group row, so
/// that two replicas placing members of one hard group at once cannot both break its policy.
/// </summary>
internal sealed class PlacementStore(NpgsqlDataSource dataSource)
{
    private const string GroupMembersPerNode = """
        SELECT a.node_id, count(DISTINCT m.consumer_id)::int
          FROM server_group_members AS m
          JOIN allocations AS a ON a.consumer_id = m.consumer_id
         WHERE m.group_id = $1
         GROUP BY a.node_id
        """;

    /// <summary>The group, or null when it does not exist.</summary>
    public async Task<ServerGroupSnapshot?> LoadGroupAsync(Guid groupId, CancellationToken cancellationToken)
    {
        await using var batch = dataSource.CreateBatch();
        batch.BatchCommands.Add(Command("""
            SELECT project_id, name, policy, max_members, (SELECT count(*)::int FROM server_group_members WHERE group_id = $1)
              FROM server_groups WHERE id = $1
            """, groupId));
        batch.BatchCommands.Add(Command(GroupMembersPerNode, groupId));
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return null;
        }
        var (project, name, policy, max, members) = (reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt32(3), reader.GetInt32(4));
        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var perNode = new Dictionary<Guid, int>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            perNode[reader.GetGuid(0)] = reader.GetInt32(1);
        }
        return new ServerGroupSnapshot(groupId, project, name, policy, max, members, perNode);
    }

    /// <summary>
    /// Adds members to a group in the caller's transaction, after their claims, and checks the
    /// group still keeps its policy and limit. Returns why not, or null; on a refusal the
    /// caller rolls back.
    /// </summary>
    public static async Task<string?> AddMembersAsync(NpgsqlTransaction transaction, Guid groupId, Guid[] consumers, CancellationToken cancellationToken)
    {
        await using var batch = new NpgsqlBatch(transaction.Connection, transaction)
        {
            BatchCommands =
            {
                Command("SELECT name, policy, max_members FROM server_groups WHERE id = $1 FOR UPDATE", groupId),
                Command("INSERT INTO server_group_members (group_id, consumer_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING", groupId, consumers),
                Command("SELECT count(*)::int FROM server_group_members WHERE group_id = $1", groupId),
                Command(GroupMembersPerNode, groupId),
            },
        };
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return $"server group {groupId} no longer exists";
        }
        var (name, policy, max) = (reader.GetString(0), reader.GetString(1), reader.GetInt32(2));
        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var members = reader.GetInt32(0);
        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var nodes = 0;
        var most = 0;
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            nodes++;
            most = Math.Max(most, reader.GetInt32(1));
        }
        if (members > max)
        {
            return $"server group {name} would have {members} members, more than its limit of {max}";
        }
        return policy switch
        {
            ServerGroupPolicies.Affinity when nodes > 1 => $"affinity group {name} would span {nodes} nodes",
            ServerGroupPolicies.AntiAffinity when most > 1 => $"anti-affinity group {name} would have {most} members on one node",
            _ => null,
        };
    }

    /// <summary>Records decisions in one statement, on a connection of its own.</summary>
    public async Task RecordAsync(IReadOnlyList<PlacementDecisionEntity> decisions, CancellationToken cancellationToken)
    {
        if (decisions.Count == 0)
        {
            return;
        }
        await using var batch = dataSource.CreateBatch();
        batch.BatchCommands.Add(RecordCommand(decisions));
        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The statement that records decisions, to send alongside a claim (in its round trip, undone with it).</summary>
    public static NpgsqlBatchCommand RecordCommand(IReadOnlyList<PlacementDecisionEntity> decisions)
    {
        ArgumentNullException.ThrowIfNull(decisions);
        const string Sql = """
            INSERT INTO placement_decisions (id, consumer_id, project_id, kind, outcome, node_id, node_name, nodes_considered,
                                             rejections, nearest_miss, summary, request, attempts, created_at)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::text[], $8::int[],
                                 $9::json[], $10::text[], $11::text[], $12::json[], $13::int[], $14::timestamptz[])
            """;
        return Command(Sql,
            decisions.Select(d => d.Id).ToArray(),
            decisions.Select(d => d.ConsumerId).ToArray(),
            decisions.Select(d => d.ProjectId).ToArray(),
            decisions.Select(d => d.Kind).ToArray(),
            decisions.Select(d => d.Outcome).ToArray(),
            decisions.Select(d => d.NodeId).ToArray(),
            decisions.Select(d => d.NodeName).ToArray(),
            decisions.Select(d => d.NodesConsidered).ToArray(),
            decisions.Select(d => d.Rejections).ToArray(),
            decisions.Select(d => d.NearestMiss).ToArray(),
            decisions.Select(d => d.Summary).ToArray(),
            decisions.Select(d => d.Request).ToArray(),
            decisions.Select(d => d.Attempts).ToArray(),
            decisions.Select(d => d.CreatedAt).ToArray());
    }

    private static NpgsqlBatchCommand Command(string sql, params object[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var value in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }
        return command;
    }
}
