using Cloud.Controller.Api;
using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
using Cloud.Controller.Operations;
using Grpc.Core;
using Google.Protobuf;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Vms;

/// <summary>What the handlers of VM verbs share: finding the VM's agent, and ending an operation
/// together with the rows it changes, in one transaction.</summary>
internal sealed class VmHandlerSupport(
    IDbContextFactory<LedgerDbContext> contexts,
    NpgsqlDataSource dataSource,
    AgentConnections agents,
    TimeProvider time)
{
    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(true));

    public TimeProvider Time => time;

    public IDbContextFactory<LedgerDbContext> Contexts => contexts;

    public static T Input<T>(OperationEntity operation) where T : IMessage<T>, new()
        => Parser.Parse<T>(operation.Request ?? "{}");

    /// <summary>The VM, its node and a client for the node's agent; null (and the operation failed) when the VM is on no node.</summary>
    public async Task<(VmEntity Vm, NodeEntity Node, AgentConnection Agent)?> LoadAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        var vmId = Guid.Parse(operation.TargetId);
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var vm = await db.Vms.AsNoTracking().SingleAsync(v => v.Id == vmId, cancellationToken);
        if (vm.NodeId is not { } nodeId || vm.State is VmStates.Deleting or VmStates.Deleted)
        {
            await FinishAsync(operation.Id, ApiException.CodeName(StatusCode.FailedPrecondition), $"VM {vm.Id} is {vm.State} and on no node any more.", null, cancellationToken);
            return null;
        }
        var node = await db.Nodes.AsNoTracking().SingleAsync(n => n.Id == nodeId, cancellationToken);
        await OperationUpdates.ProgressAsync(db, operation.Id, 20, time, cancellationToken);
        return (vm, node, agents.For(node));
    }

    public async Task ProgressAsync(Guid operationId, int progress, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        await OperationUpdates.ProgressAsync(db, operationId, progress, time, cancellationToken);
    }

    /// <summary>Ends the operation (succeeded when <paramref name="errorCode"/> is null) and applies <paramref name="writes"/> in the same transaction.</summary>
    public async Task FinishAsync(Guid operationId, string? errorCode, string? errorMessage, Func<NpgsqlTransaction, Task>? writes, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        if (writes is not null)
        {
            await writes(transaction);
        }
        await VmRowUpdates.FinishOperationAsync(transaction, operationId, errorCode, errorMessage, time.GetUtcNow(), cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>Ends the operation with the agent's refusal, its code kept as the operation's.</summary>
    public Task FailAsync(Guid operationId, NodeEntity node, RpcException e, Func<NpgsqlTransaction, Task>? writes, CancellationToken cancellationToken)
        => FinishAsync(operationId, ApiException.CodeName(e.StatusCode), $"Node {node.Name}: {e.Status.Detail}", writes, cancellationToken);

    /// <summary>Records the state the agent reports for a VM, unless it is being deleted meanwhile.</summary>
    public async Task SetStateAsync(NpgsqlTransaction transaction, Guid vmId, AgentV1.VmState reported, CancellationToken cancellationToken)
    {
        var state = reported switch
        {
            AgentV1.VmState.Running or AgentV1.VmState.Paused => VmStates.Running,
            AgentV1.VmState.Stopped => VmStates.Stopped,
            AgentV1.VmState.Crashed => VmStates.Error,
            _ => null,
        };
        await using var command = new NpgsqlCommand(
            "UPDATE vms SET state = coalesce($2, state), error = NULL, updated_at = $3 WHERE id = $1 AND state NOT IN ('DELETING', 'DELETED')",
            transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = vmId });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)state ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = time.GetUtcNow() });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Says that the operation's change was undone: the VM stays as it was before it.</summary>
    public static Task<int> MarkRolledBackAsync(NpgsqlTransaction transaction, Guid operationId, CancellationToken cancellationToken)
        => ExecuteAsync(transaction, "UPDATE operations SET recovery = 'ROLLED_BACK' WHERE id = $1", cancellationToken, operationId);

    public static async Task<int> ExecuteAsync(NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, transaction.Connection, transaction);
        foreach (var value in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
