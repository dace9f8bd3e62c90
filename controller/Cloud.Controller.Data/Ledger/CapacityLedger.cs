using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Cloud.Controller.Data;

/// <summary>
/// The capacity ledger on plain Npgsql: loading capacity for the scheduler, atomic optimistic
/// claims, releases, and node registration. Claims are optimistic on each node's generation
/// and checked against capacity in the same transaction (docs/design/003-capacity-ledger.md).
/// Thread-safe: every call takes its own connection from the data source, or runs in the
/// caller's transaction.
/// </summary>
internal sealed partial class CapacityLedger(NpgsqlDataSource dataSource, TimeProvider time, ILogger<CapacityLedger>? logger = null)
{
    /// <summary>A batch larger than this is a caller bug, not a spike.</summary>
    public const int MaxClaimsPerBatch = 10_000;

    private const string Savepoint = "cloud_ledger_claim";

    private readonly ILogger _logger = (ILogger?)logger ?? NullLogger.Instance;

    /// <summary>Every node with its inventories and usage, read in one statement (one snapshot).</summary>
    public async Task<IReadOnlyList<NodeCapacity>> LoadAsync(CancellationToken cancellationToken)
    {
        using var activity = LedgerTelemetry.Source.StartActivity("ledger.load");
        await using var command = dataSource.CreateCommand(LedgerSql.Load(someNodes: false));
        var nodes = await ReadCapacitiesAsync(command, cancellationToken).ConfigureAwait(false);
        activity?.SetTag("cloud.ledger.nodes", nodes.Count);
        return nodes;
    }

    /// <summary>
    /// Every node's generation, state and schedulable flag: what a view compares with its own to
    /// find the nodes it must reload (<see cref="LedgerSql.NodeVersions"/>), far cheaper than
    /// <see cref="LoadAsync"/> on a large cloud.
    /// </summary>
    public async Task<IReadOnlyList<NodeVersion>> LoadNodeVersionsAsync(CancellationToken cancellationToken)
    {
        using var activity = LedgerTelemetry.Source.StartActivity("ledger.versions");
        await using var command = dataSource.CreateCommand(LedgerSql.NodeVersions);
        var versions = new List<NodeVersion>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            versions.Add(new NodeVersion(reader.GetGuid(0), reader.GetInt64(1), reader.GetString(2), reader.GetBoolean(3)));
        }
        activity?.SetTag("cloud.ledger.nodes", versions.Count);
        return versions;
    }

    /// <summary>One node as <see cref="LoadAsync"/> sees it, or null when it does not exist.</summary>
    public async Task<NodeCapacity?> LoadNodeAsync(Guid nodeId, CancellationToken cancellationToken)
    {
        var nodes = await LoadNodesAsync([nodeId], cancellationToken).ConfigureAwait(false);
        return nodes.Count == 0 ? null : nodes[0];
    }

    /// <summary>
    /// Some nodes as <see cref="LoadAsync"/> sees them, in one statement (a refused claim or a
    /// group of releases reloads its nodes in one round trip). Nodes that do not exist are left out.
    /// </summary>
    public async Task<IReadOnlyList<NodeCapacity>> LoadNodesAsync(IReadOnlyCollection<Guid> nodeIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(nodeIds);
        await using var command = dataSource.CreateCommand(LedgerSql.Load(someNodes: true));
        command.Parameters.Add(new NpgsqlParameter { Value = nodeIds.ToArray() });
        return await ReadCapacitiesAsync(command, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<List<NodeCapacity>> ReadCapacitiesAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var nodes = new List<NodeCapacity>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var inventories = new Dictionary<string, ResourceInventory>(StringComparer.Ordinal);
            if (!reader.IsDBNull(8))
            {
                var classes = reader.GetFieldValue<string[]>(8);
                var totals = reader.GetFieldValue<long[]>(9);
                var reserved = reader.GetFieldValue<long[]>(10);
                var ratios = reader.GetFieldValue<double[]>(11);
                var minUnits = reader.GetFieldValue<long[]>(12);
                var maxUnits = reader.GetFieldValue<long[]>(13);
                var stepSizes = reader.GetFieldValue<long[]>(14);
                for (var i = 0; i < classes.Length; i++)
                {
                    inventories[classes[i]] = new ResourceInventory(totals[i], reserved[i], ratios[i], minUnits[i], maxUnits[i], stepSizes[i]);
                }
            }
            var used = new Dictionary<string, long>(StringComparer.Ordinal);
            if (!reader.IsDBNull(15))
            {
                var classes = reader.GetFieldValue<string[]>(15);
                var amounts = reader.GetFieldValue<long[]>(16);
                for (var i = 0; i < classes.Length; i++)
                {
                    used[classes[i]] = amounts[i];
                }
            }
            nodes.Add(new NodeCapacity(
                reader.GetGuid(0),
                reader.GetString(1),
                reader.GetString(2),
                reader.GetString(3),
                reader.GetBoolean(4),
                reader.GetString(5),
                reader.GetFieldValue<string[]>(6),
                reader.GetInt64(7),
                inventories,
                used)
            {
                Hypervisor = reader.GetString(17),
                Aggregates = reader.IsDBNull(18) ? [] : reader.GetFieldValue<string[]>(18),
            });
        }
        return nodes;
    }

    /// <summary>
    /// Claims every resource of every claim, or nothing. Per node touched, the generation must
    /// still be the expected one (it is then bumped once for the batch), and after the claim no
    /// resource class may exceed its capacity nor any single allocation break the node's unit
    /// rules. A refusal rolls back and lists the nodes to reload; it never throws.
    /// With <paramref name="transaction"/>, the claim runs inside it (behind a savepoint, so
    /// that a refusal leaves the caller's earlier work intact) and the caller commits; without,
    /// the claim is committed in the same round trip that makes it.
    /// </summary>
    /// <exception cref="ArgumentException">A claim is malformed (no resources, an amount that is not positive, ...).</exception>
    public Task<ClaimResult> TryClaimAsync(IReadOnlyList<Claim> claims, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
        => TryClaimAsync(claims, transaction, [], cancellationToken);

    /// <summary>
    /// As <see cref="TryClaimAsync(IReadOnlyList{Claim}, NpgsqlTransaction?, CancellationToken)"/>,
    /// with <paramref name="alongside"/> (statements that return no rows, such as the record of
    /// the decision) sent in the claim's round trip and undone with it when it is refused.
    /// </summary>
    public async Task<ClaimResult> TryClaimAsync(IReadOnlyList<Claim> claims, NpgsqlTransaction? transaction, IReadOnlyList<NpgsqlBatchCommand> alongside, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(alongside);
        var plan = ClaimPlan.Build(claims);
        if (plan.Allocations.Count == 0)
        {
            return ClaimResult.Success;
        }
        if (transaction is not null && transaction.Connection is null)
        {
            throw new InvalidOperationException("The transaction given for the claim has already completed.");
        }

        using var activity = LedgerTelemetry.Source.StartActivity("ledger.claim");
        activity?.SetTag("cloud.ledger.claims", claims.Count).SetTag("cloud.ledger.nodes", plan.NodeIds.Length);
        var started = time.GetTimestamp();
        ClaimResult result;
        if (transaction is null)
        {
            // No transaction of the caller's: the batch runs as one implicit transaction, which
            // PostgreSQL commits as the batch ends (durably, before it answers) or rolls back
            // whole when a statement refuses the claim. One round trip, and the nodes are
            // locked only while PostgreSQL runs it.
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            result = await ClaimInAsync(connection, null, plan, alongside, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            result = await ClaimInAsync(transaction.Connection!, transaction, plan, alongside, cancellationToken).ConfigureAwait(false);
        }

        var outcome = result.Succeeded ? "committed" : "conflict";
        LedgerTelemetry.ClaimDuration.Record(time.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("outcome", outcome));
        if (result.Succeeded)
        {
            LedgerTelemetry.ClaimsCommitted.Add(claims.Count);
        }
        else
        {
            var reason = result.Conflicts[0].Reason.ToString();
            LedgerTelemetry.ClaimConflicts.Add(1, new KeyValuePair<string, object?>("reason", reason));
            // A refusal is an expected outcome of optimism, not an error: the span's status stays unset.
            activity?.SetTag("cloud.ledger.conflicts", result.Conflicts.Count).SetTag("cloud.ledger.conflict_reason", reason);
            Log.ClaimRefused(_logger, claims.Count, result.Conflicts.Count, reason);
        }
        activity?.SetTag("cloud.ledger.outcome", outcome);
        return result;
    }

    /// <summary>
    /// Sends the claim in one batch. In the caller's <paramref name="transaction"/>, the batch
    /// runs behind a savepoint that a refusal rolls back to, so that the caller's earlier work
    /// stays; without one, the batch is its own transaction.
    /// </summary>
    private async Task<ClaimResult> ClaimInAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, ClaimPlan plan,
        IReadOnlyList<NpgsqlBatchCommand> alongside, CancellationToken cancellationToken)
    {
        await using var batch = new NpgsqlBatch(connection, transaction);
        if (transaction is not null)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand($"SAVEPOINT {Savepoint}"));
        }
        // The caller's statements (the decision and the VM rows, say) go first: they do not depend
        // on capacity, and the nodes stay locked for less time when they are not in between. Then
        // the claim itself: locks, generations, consumers, allocations and capacity, in one
        // function that refuses by raising LedgerSql.RefusedState, naming the nodes.
        foreach (var command in alongside)
        {
            batch.BatchCommands.Add(command);
        }
        batch.BatchCommands.Add(Command(LedgerSql.Claim, plan.NodeIds, plan.ExpectedGenerations,
            plan.ConsumerIds, plan.ConsumerKinds, plan.ConsumerProjects, time.GetUtcNow(),
            plan.AllocationConsumers, plan.AllocationNodes, plan.AllocationClasses, plan.AllocationAmounts));

        List<ClaimConflict> conflicts;
        try
        {
            // Reads to the end of the batch: with no transaction of the caller's, that is where
            // PostgreSQL reports the commit.
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return ClaimResult.Success;
        }
        catch (PostgresException e) when (e.SqlState == LedgerSql.RefusedState)
        {
            conflicts = ParseRefusals(e.MessageText, out var mismatchedConsumer);
            await UndoAsync(transaction, cancellationToken).ConfigureAwait(false);
            if (mismatchedConsumer)
            {
                throw new ArgumentException(
                    "A consumer of the batch already exists with another kind or project; a consumer's kind and project never change.", "claims");
            }
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.LockNotAvailable)
        {
            await UndoAsync(transaction, cancellationToken).ConfigureAwait(false);
            conflicts = [.. plan.NodeIds.Select(id => new ClaimConflict(id, ClaimConflictReason.Contention))];
        }
        return new ClaimResult(conflicts);
    }

    /// <summary>
    /// The conflicts of a refusal's message: "claim refused: " then "Reason id" pairs separated
    /// by ", ", as the ledger's statements write them. A message in another shape is a bug in
    /// those statements, and says so rather than passing for a conflict.
    /// </summary>
    internal static List<ClaimConflict> ParseRefusals(string message, out bool mismatchedConsumer)
    {
        mismatchedConsumer = false;
        if (!message.StartsWith(LedgerSql.RefusedPrefix, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"A claim's refusal is not in the expected shape: {message}");
        }
        var conflicts = new List<ClaimConflict>();
        foreach (var refusal in message[LedgerSql.RefusedPrefix.Length..].Split(", "))
        {
            var parts = refusal.Split(' ');
            if (parts.Length != 2 || !Guid.TryParse(parts[1], out var id))
            {
                throw new InvalidOperationException($"A claim's refusal is not in the expected shape: {message}");
            }
            if (parts[0] == LedgerSql.ConsumerMismatch)
            {
                mismatchedConsumer = true;
            }
            else if (Enum.GetNames<ClaimConflictReason>().Contains(parts[0], StringComparer.Ordinal))
            {
                conflicts.Add(new ClaimConflict(id, Enum.Parse<ClaimConflictReason>(parts[0])));
            }
            else
            {
                throw new InvalidOperationException($"A claim's refusal names an unknown reason: {message}");
            }
        }
        return conflicts;
    }

    /// <summary>
    /// Undoes a refused claim inside the caller's transaction. Without one, PostgreSQL has rolled
    /// the claim's own transaction back already.
    /// </summary>
    private static async Task UndoAsync(NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        if (transaction is null)
        {
            return;
        }
        await using var command = new NpgsqlCommand($"ROLLBACK TO SAVEPOINT {Savepoint}", transaction.Connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Deletes the consumer and its allocations, bumping the generation of every node it held
    /// capacity on. Releasing an unknown consumer does nothing, so a retried release is harmless.
    /// </summary>
    /// <returns>The nodes whose capacity was freed.</returns>
    public async Task<IReadOnlyList<Guid>> ReleaseAsync(Guid consumerId, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        if (transaction is not null && transaction.Connection is null)
        {
            throw new InvalidOperationException("The transaction given for the release has already completed.");
        }
        using var activity = LedgerTelemetry.Source.StartActivity("ledger.release");
        activity?.SetTag("cloud.consumer_id", consumerId);
        if (transaction is null)
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var owned = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var nodes = await ReleaseInAsync(owned, consumerId, cancellationToken).ConfigureAwait(false);
            await owned.CommitAsync(cancellationToken).ConfigureAwait(false);
            activity?.SetTag("cloud.ledger.nodes", nodes.Count);
            return nodes;
        }
        var released = await ReleaseInAsync(transaction, consumerId, cancellationToken).ConfigureAwait(false);
        activity?.SetTag("cloud.ledger.nodes", released.Count);
        return released;
    }

    private static async Task<IReadOnlyList<Guid>> ReleaseInAsync(NpgsqlTransaction transaction, Guid consumerId, CancellationToken cancellationToken)
    {
        await using var batch = new NpgsqlBatch(transaction.Connection, transaction)
        {
            BatchCommands =
            {
                Command(LedgerSql.LockConsumerNodes, consumerId),
                Command(LedgerSql.BumpConsumerNodes, consumerId),
                Command(LedgerSql.DeleteConsumer, consumerId),
            },
        };
        var nodes = new List<Guid>();
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            nodes.Add(reader.GetGuid(0));
        }
        return nodes;
    }

    /// <summary>
    /// Registers a node, or updates the one of the same name: its address, hypervisor, zone and
    /// traits, UP, heard from now. Its inventories are replaced with the registered ones, and its
    /// generation bumped only when they actually changed. The scheduler's schedulable flag is
    /// left as the operator set it.
    /// </summary>
    /// <returns>The node's id (the existing one when the name is known).</returns>
    public async Task<Guid> UpsertNodeAsync(NodeRegistration registration, CancellationToken cancellationToken)
    {
        NodeRegistrationRules.Validate(registration);
        var now = time.GetUtcNow();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);

        Guid nodeId;
        bool inserted;
        var existing = new Dictionary<string, ResourceInventory>(StringComparer.Ordinal);
        await using (var batch = new NpgsqlBatch(connection, transaction)
        {
            BatchCommands =
            {
                Command(LedgerSql.UpsertNode, Guid.CreateVersion7(now), registration.Name, registration.Address, registration.Hypervisor,
                    registration.Accelerator, registration.AvailabilityZone, registration.Traits.ToArray(), now),
                Command(LedgerSql.NodeInventories, registration.Name),
            },
        })
        {
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            nodeId = reader.GetGuid(0);
            inserted = reader.GetBoolean(1);
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                existing[reader.GetString(0)] = new ResourceInventory(
                    reader.GetInt64(1), reader.GetInt64(2), reader.GetDouble(3), reader.GetInt64(4), reader.GetInt64(5), reader.GetInt64(6));
            }
        }

        if (!SameInventories(existing, registration.Inventories))
        {
            var classes = registration.Inventories.Keys.ToArray();
            var values = registration.Inventories.Values.ToArray();
            await using var batch = new NpgsqlBatch(connection, transaction)
            {
                BatchCommands =
                {
                    Command(LedgerSql.DeleteOtherInventories, nodeId, classes),
                    Command(LedgerSql.UpsertInventories, nodeId, classes,
                        values.Select(v => v.Total).ToArray(), values.Select(v => v.Reserved).ToArray(),
                        values.Select(v => v.AllocationRatio).ToArray(), values.Select(v => v.MinUnit).ToArray(),
                        values.Select(v => v.MaxUnit).ToArray(), values.Select(v => v.StepSize).ToArray()),
                    Command(LedgerSql.OvercommittedClasses, nodeId),
                },
            };
            if (!inserted)
            {
                // A new node starts at generation 0 with its first inventory; nobody can have
                // read it before, so there is no stale view to refuse.
                batch.BatchCommands.Insert(2, Command(LedgerSql.BumpNode, nodeId));
            }
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                // The agent reports the hardware as it is; refusing it would not give the
                // capacity back. The node simply takes nothing more until usage fits again.
                Log.InventoryBelowUsage(_logger, registration.Name, reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2));
            }
        }
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return nodeId;
    }

    private static bool SameInventories(Dictionary<string, ResourceInventory> existing, IReadOnlyDictionary<string, ResourceInventory> registered)
        => existing.Count == registered.Count
            && registered.All(r => existing.TryGetValue(r.Key, out var e) && e == r.Value);

    /// <summary>Records a heartbeat that carries no session; see the overload with one.</summary>
    public Task<HeartbeatReceipt> TouchHeartbeatAsync(Guid nodeId, CancellationToken cancellationToken)
        => TouchHeartbeatAsync(nodeId, null, cancellationToken);

    /// <summary>
    /// Records a heartbeat; a node that was DOWN is UP again. Not known when the node is unknown.
    /// A heartbeat numbered in another session than the node's current one, or at or below a
    /// number already taken, is older than one already recorded: it is not <c>Fresh</c> and
    /// changes nothing, not even the node's last heartbeat time.
    /// </summary>
    public async Task<HeartbeatReceipt> TouchHeartbeatAsync(Guid nodeId, (Guid Session, long Sequence)? numbered, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(LedgerSql.TouchHeartbeat);
        command.Parameters.Add(new NpgsqlParameter { Value = nodeId });
        command.Parameters.Add(new NpgsqlParameter { Value = time.GetUtcNow() });
        command.Parameters.Add(new NpgsqlParameter<Guid?> { TypedValue = numbered?.Session });
        command.Parameters.Add(new NpgsqlParameter<long?> { TypedValue = numbered?.Sequence });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return HeartbeatReceipt.UnknownNode;
        }
        var previous = await reader.IsDBNullAsync(0, cancellationToken).ConfigureAwait(false) ? (DateTimeOffset?)null : reader.GetFieldValue<DateTimeOffset>(0);
        return new HeartbeatReceipt(true, previous) { Fresh = reader.GetBoolean(1) };
    }

    /// <summary>Starts a new heartbeat session for a node that registers; null when the node is unknown.</summary>
    public async Task<Guid?> StartHeartbeatSessionAsync(Guid nodeId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(LedgerSql.StartHeartbeatSession);
        command.Parameters.Add(new NpgsqlParameter { Value = nodeId });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as Guid?;
    }

    /// <summary>Marks DOWN every UP node not heard from for longer than <paramref name="maxAge"/>.</summary>
    /// <returns>How many nodes went down.</returns>
    public async Task<int> MarkStaleNodesDownAsync(TimeSpan maxAge, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxAge, TimeSpan.Zero);
        await using var command = dataSource.CreateCommand(LedgerSql.MarkStaleNodesDown);
        command.Parameters.Add(new NpgsqlParameter { Value = time.GetUtcNow() - maxAge });
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
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

    private static partial class Log
    {
        [LoggerMessage(EventId = DataEventIds.ClaimRefused, Level = LogLevel.Debug,
            Message = "A batch of {Claims} claim(s) was refused on {Nodes} node(s): {Reason}")]
        public static partial void ClaimRefused(ILogger logger, int claims, int nodes, string reason);

        [LoggerMessage(EventId = DataEventIds.InventoryBelowUsage, Level = LogLevel.Warning,
            Message = "Node {NodeName} registered {ResourceClass} capacity {Capacity} below its usage {Used}; it takes no new claims for it until usage fits")]
        public static partial void InventoryBelowUsage(ILogger logger, string nodeName, string resourceClass, long capacity, long used);
    }
}

/// <summary>
/// What recording a heartbeat found: whether the node is known, when the node's previous
/// heartbeat arrived (null for its first), and whether this heartbeat is newer than every one
/// recorded (an old one was not recorded).
/// </summary>
internal readonly record struct HeartbeatReceipt(bool Known, DateTimeOffset? PreviousHeartbeatAt)
{
    public static readonly HeartbeatReceipt UnknownNode = new(false, null);

    public bool Fresh { get; init; } = true;
}
