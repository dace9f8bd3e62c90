using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Scheduling;
using Cloud.Controller.Vms;
using Cloud.Contracts.Agent.V1;
using Cloud.Contracts.Node.V1;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cloud.Controller.Nodes;

/// <summary>Section "Nodes".</summary>
public sealed class NodeOptions
{
    public const string SectionName = "Nodes";

    /// <summary>Heartbeat period asked of agents. Default 5 s.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>A node silent for this long is marked DOWN and gets no new VMs. Default 30 s.</summary>
    public TimeSpan DownAfter { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// cloud.node.v1.NodeRegistry: agents register their inventory and heartbeat their VMs' actual
/// state. Everything an agent sends is checked before it reaches the ledger, and a node speaks
/// only for itself: the name it registers and the node it heartbeats for are the name in its
/// certificate.
/// </summary>
[Microsoft.AspNetCore.Authorization.Authorize(Policy = CloudPolicies.Node)]
internal sealed class NodeRegistryService(
    CapacityLedger ledger,
    NpgsqlDataSource dataSource,
    Scheduler scheduler,
    IOptions<NodeOptions> options) : NodeRegistry.NodeRegistryBase
{
    private const int MaxCachedNames = 100_000;
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, string> _names = new();

    /// <summary>A node joining (or joining again) changes what the scheduler may use: recorded in the audit trail. Heartbeats are not (see docs/audit.md).</summary>
    [Audit.Audited]
    public override async Task<RegisterResponse> Register(RegisterRequest request, ServerCallContext context)
    {
        var registration = NodeValidation.Validate(request);
        var caller = ApiCallers.NodeOf(context);
        if (registration.Name != caller)
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"This certificate is node {caller}'s; it cannot register node {registration.Name}."));
        }
        var nodeId = await ledger.UpsertNodeAsync(registration, context.CancellationToken);
        var session = await ledger.StartHeartbeatSessionAsync(nodeId, context.CancellationToken);
        scheduler.InvalidateAll();
        return new RegisterResponse
        {
            NodeId = nodeId.ToString(),
            HeartbeatIntervalSeconds = (int)options.Value.HeartbeatInterval.TotalSeconds,
            HeartbeatSession = session?.ToString() ?? "",
        };
    }

    public override async Task<HeartbeatResponse> Heartbeat(HeartbeatRequest request, ServerCallContext context)
    {
        if (!Guid.TryParse(request.NodeId, out var nodeId))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "node_id must be the id Register returned."));
        }
        if (request.Vms.Count > NodeValidation.MaxVmsPerHeartbeat)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"A heartbeat carries at most {NodeValidation.MaxVmsPerHeartbeat} VMs."));
        }
        await RequireOwnNodeAsync(nodeId, ApiCallers.NodeOf(context), context.CancellationToken);
        var receipt = await ledger.TouchHeartbeatAsync(nodeId, Numbered(request), context.CancellationToken);
        if (!receipt.Known)
        {
            return new HeartbeatResponse { Known = false };
        }
        if (!receipt.Fresh)
        {
            // Sent before one already recorded (or before the agent registered again): what it
            // says of the VMs is older than what the controller knows.
            return new HeartbeatResponse { Known = true };
        }
        context.GetHttpContext().RequestServices.GetRequiredService<HeartbeatMetrics>().Record(nodeId, receipt.PreviousHeartbeatAt);
        if (receipt.PreviousHeartbeatAt is { } previous)
        {
            await ReconcileVmStatesAsync(nodeId, request.Vms, previous, context.CancellationToken);
        }
        return new HeartbeatResponse { Known = true };
    }

    /// <summary>
    /// Refuses a heartbeat for another node's id. An id the ledger does not know passes: the
    /// heartbeat then answers known=false and the agent registers again, as itself.
    /// </summary>
    private async Task RequireOwnNodeAsync(Guid nodeId, string caller, CancellationToken cancellationToken)
    {
        if (!_names.TryGetValue(nodeId, out var name))
        {
            await using var command = dataSource.CreateCommand("SELECT name FROM nodes WHERE id = $1");
            command.Parameters.Add(new() { Value = nodeId });
            if (await command.ExecuteScalarAsync(cancellationToken) is not string found)
            {
                return;
            }
            // A node's id never changes its name, so this never goes stale.
            name = _names.Count < MaxCachedNames ? _names.GetOrAdd(nodeId, found) : found;
        }
        if (name != caller)
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"This certificate is node {caller}'s; it cannot heartbeat for node {name}."));
        }
    }

    /// <summary>The heartbeat's session and number, checked; null for an agent that sends none.</summary>
    private static (Guid Session, long Sequence)? Numbered(HeartbeatRequest request)
    {
        if (request.HeartbeatSession.Length == 0)
        {
            return null;
        }
        if (!Guid.TryParse(request.HeartbeatSession, out var session))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "heartbeat_session must be the session Register returned."));
        }
        if (request.Sequence is 0 or > long.MaxValue)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"sequence must be between 1 and {long.MaxValue}, not {request.Sequence}."));
        }
        return (session, (long)request.Sequence);
    }

    /// <summary>
    /// What the node reports wins for settled VMs: a guest that powered itself off shows as
    /// STOPPED, one whose QEMU died as ERROR, and one the node no longer has at all as ERROR.
    /// VMs in the middle of an operation are left to it.
    /// <para>
    /// <c>coveredBefore</c> is when the node's previous heartbeat arrived. An agent samples its VMs
    /// only after its previous heartbeat was answered, so this report was sampled after that
    /// moment and is complete for every VM whose last change was recorded before it (a verb's
    /// result is recorded after the agent carried it out). A VM changed later may be newer than
    /// the report and waits for the next one. This holds however long the report took to arrive,
    /// where a fixed grace period declared a freshly created VM lost behind a slow heartbeat.
    /// </para>
    /// </summary>
    private async Task ReconcileVmStatesAsync(Guid nodeId, IEnumerable<Contracts.Agent.V1.Vm> reported, DateTimeOffset coveredBefore, CancellationToken cancellationToken)
    {
        var ids = new List<Guid>();
        var states = new List<string?>();
        foreach (var vm in reported)
        {
            if (Guid.TryParseExact(vm.VmId, "N", out var id))
            {
                ids.Add(id);
                // Null: the node has the VM but it is between states; nothing to settle.
                states.Add(vm.State switch
                {
                    VmState.Running or VmState.Paused => VmStates.Running,
                    VmState.Stopped => VmStates.Stopped,
                    VmState.Crashed => VmStates.Error,
                    _ => null,
                });
            }
        }
        // A VM with an operation under way is left to the operation.
        await using var command = dataSource.CreateCommand(
            """
            WITH reported AS (SELECT * FROM unnest(@ids::uuid[], @states::text[]) AS r(id, state)),
                 observed AS (
                   SELECT v.id, CASE WHEN r.id IS NULL THEN 'ERROR' ELSE r.state END AS state, r.id IS NULL AS lost
                     FROM vms v LEFT JOIN reported r ON r.id = v.id
                    WHERE v.node_id = @node AND v.state IN ('RUNNING', 'STOPPED', 'ERROR')
                      AND v.updated_at < @covered_before
                      AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.target_id = v.id::text AND o.state IN ('PENDING', 'RUNNING')))
            UPDATE vms v
               SET state = o.state,
                   error = CASE WHEN o.lost THEN 'The node no longer reports this VM.' WHEN o.state = 'ERROR' THEN 'The guest crashed.' ELSE NULL END,
                   updated_at = now()
              FROM observed o
             WHERE v.id = o.id AND o.state IS NOT NULL AND v.state <> o.state
            """);
        command.Parameters.AddWithValue("ids", ids.ToArray());
        command.Parameters.AddWithValue("states", states.ToArray());
        command.Parameters.AddWithValue("node", nodeId);
        command.Parameters.AddWithValue("covered_before", coveredBefore);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
