using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Operations;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Google.Protobuf;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Nodes;

/// <summary>
/// node.drain (operators): the node was cordoned when the drain started; every VM on it, running
/// or stopped, is migrated, each by a vm.migrate operation of its own with no node named (the
/// scheduler chooses, with the VM's constraints), at most <see cref="DrainNodeRequest.MaxParallel"/>
/// at a time. A VM busy with another operation is waited for; each VM is tried once. The
/// operation's result lists every VM and what became of it, and is written as the drain goes,
/// so that a controller taking over a drain goes on from it. The drain fails, naming them, when
/// VMs are left: in another state (creating, in error), or their migration failed.
/// </summary>
internal sealed partial class DrainNodeHandler(
    VmHandlerSupport support,
    VmService vms,
    IOptions<OperationOptions> operationOptions,
    ILogger<DrainNodeHandler> logger) : IOperationHandler
{
    public const int DefaultParallel = 2;
    public const int MaxParallel = 16;

    public const string Moved = "MOVED";
    public const string Left = "LEFT";
    public const string Migrating = "MIGRATING";

    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default);
    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(true));
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    public string Kind => OperationKinds.NodeDrain;

    private sealed record Resident(Guid Id, string Name, string State);

    public async Task RunAsync(OperationEntity operation, CancellationToken cancellationToken)
    {
        var input = VmHandlerSupport.Input<DrainNodeRequest>(operation);
        var parallel = input.MaxParallel == 0 ? DefaultParallel : input.MaxParallel;
        var nodeId = Guid.Parse(operation.TargetId);
        // The migrations are the operator's who asked for the drain, as if asked one by one.
        var caller = new Caller($"node.drain {operation.Id}", operation.ProjectId, TokenRoles.Operator);
        var result = operation.Result is { } earlier ? Parser.Parse<DrainNodeResult>(earlier) : new DrainNodeResult();
        var byId = result.Vms.ToDictionary(v => Guid.Parse(v.Id));
        Log.Draining(logger, nodeId, parallel, byId.Count);

        while (true)
        {
            await SettleEndedMigrationsAsync(byId.Values, cancellationToken);
            var residents = await ResidentsAsync(nodeId, cancellationToken);
            foreach (var resident in residents.Where(r => !byId.ContainsKey(r.Id)))
            {
                var vm = new DrainedVm { Id = resident.Id.ToString(), Name = resident.Name };
                byId[resident.Id] = vm;
                result.Vms.Add(vm);
            }
            var migrating = byId.Values.Count(v => v.Outcome == Migrating);
            var waiting = false;
            foreach (var resident in residents.Where(r => byId[r.Id].Outcome.Length == 0))
            {
                if (resident.State is not (VmStates.Running or VmStates.Stopped))
                {
                    continue;
                }
                if (migrating >= parallel)
                {
                    waiting = true;
                    break;
                }
                var vm = byId[resident.Id];
                try
                {
                    var started = await vms.MigrateAsync(caller, new MigrateVmRequest { Id = vm.Id }, cancellationToken);
                    vm.Outcome = Migrating;
                    vm.Operation = started.Id;
                    migrating++;
                }
                catch (ApiException e) when (e.Details.ContainsKey("operation"))
                {
                    // Another operation is under way on it: tried again once that one ended.
                    waiting = true;
                }
                catch (ApiException e)
                {
                    Leave(vm, e.Message);
                }
            }
            if (migrating == 0 && !waiting)
            {
                await FinishAsync(operation, nodeId, result, residents, cancellationToken);
                return;
            }
            if (!await RecordAsync(operation, result, cancellationToken))
            {
                // Another controller holds the drain now, or it ended: it is theirs.
                return;
            }
            await Task.Delay(PollInterval, support.Time, cancellationToken);
        }
    }

    /// <summary>The VMs whose migration ended: moved (and where to), or left with the migration's error.</summary>
    private async Task SettleEndedMigrationsAsync(IEnumerable<DrainedVm> drained, CancellationToken cancellationToken)
    {
        var underWay = drained.Where(v => v.Outcome == Migrating).ToDictionary(v => Guid.Parse(v.Operation));
        if (underWay.Count == 0)
        {
            return;
        }
        await using var db = await support.Contexts.CreateDbContextAsync(cancellationToken);
        var ids = underWay.Keys.ToList();
        var ended = await db.Operations.AsNoTracking()
            .Where(o => ids.Contains(o.Id) && o.State != OperationStates.Pending && o.State != OperationStates.Running)
            .Select(o => new { o.Id, o.State, o.ErrorCode, o.ErrorMessage })
            .ToListAsync(cancellationToken);
        foreach (var migration in ended)
        {
            var vm = underWay[migration.Id];
            if (migration.State == OperationStates.Succeeded)
            {
                var vmId = Guid.Parse(vm.Id);
                vm.Outcome = Moved;
                vm.Node = await db.Vms.Where(v => v.Id == vmId).Join(db.Nodes, v => v.NodeId, n => (Guid?)n.Id, (_, n) => n.Name)
                    .SingleOrDefaultAsync(cancellationToken) ?? "";
            }
            else
            {
                Leave(vm, $"{migration.ErrorCode}: {migration.ErrorMessage}");
            }
        }
    }

    private async Task<List<Resident>> ResidentsAsync(Guid nodeId, CancellationToken cancellationToken)
    {
        await using var db = await support.Contexts.CreateDbContextAsync(cancellationToken);
        return await db.Vms.AsNoTracking()
            .Where(v => v.NodeId == nodeId && v.State != VmStates.Deleted)
            .OrderBy(v => v.CreatedAt)
            .Select(v => new Resident(v.Id, v.Name, v.State))
            .ToListAsync(cancellationToken);
    }

    /// <summary>
    /// Every VM still on the node and not yet accounted for is left, with its state as the
    /// reason; one that left the node by other means (deleted, moved by someone else) drops out.
    /// </summary>
    private async Task FinishAsync(OperationEntity operation, Guid nodeId, DrainNodeResult result, List<Resident> residents, CancellationToken cancellationToken)
    {
        var stillHere = residents.ToDictionary(r => r.Id);
        foreach (var vm in result.Vms.ToList())
        {
            if (vm.Outcome.Length > 0)
            {
                continue;
            }
            if (stillHere.TryGetValue(Guid.Parse(vm.Id), out var resident))
            {
                Leave(vm, $"it is {resident.State}: only running and stopped VMs migrate.");
            }
            else
            {
                result.Vms.Remove(vm);
            }
        }
        result.Moved = result.Vms.Count(v => v.Outcome == Moved);
        result.Left = result.Vms.Count(v => v.Outcome == Left);
        string? code = null;
        string? message = null;
        if (result.Left > 0)
        {
            code = ApiException.CodeName(StatusCode.FailedPrecondition);
            message = $"{result.Left} of {result.Vms.Count} VMs are still on the node: "
                + string.Join("; ", result.Vms.Where(v => v.Outcome == Left).Select(v => $"{v.Name} ({v.Reason})"));
        }
        Log.Drained(logger, nodeId, result.Moved, result.Left);
        await support.FinishAsync(operation.Id, code, message,
            t => VmHandlerSupport.ExecuteAsync(t, "UPDATE operations SET result = $2 WHERE id = $1", cancellationToken, operation.Id, Formatter.Format(result)),
            cancellationToken);
    }

    /// <summary>The result so far, the progress and the lease, while this controller still holds the drain.</summary>
    private async Task<bool> RecordAsync(OperationEntity operation, DrainNodeResult result, CancellationToken cancellationToken)
    {
        var ended = result.Vms.Count(v => v.Outcome is Moved or Left);
        var progress = result.Vms.Count == 0 ? 0 : Math.Min(99, 100 * ended / result.Vms.Count);
        var json = Formatter.Format(result);
        var now = support.Time.GetUtcNow();
        await using var db = await support.Contexts.CreateDbContextAsync(cancellationToken);
        return await db.Operations
            .Where(o => o.Id == operation.Id && o.Owner == operation.Owner && (o.State == OperationStates.Pending || o.State == OperationStates.Running))
            .ExecuteUpdateAsync(s => s
                .SetProperty(o => o.State, OperationStates.Running)
                .SetProperty(o => o.Progress, progress)
                .SetProperty(o => o.Result, json)
                .SetProperty(o => o.UpdatedAt, now)
                .SetProperty(o => o.LeaseExpiresAt, now + operationOptions.Value.Lease), cancellationToken) == 1;
    }

    private static void Leave(DrainedVm vm, string reason)
    {
        vm.Outcome = Left;
        vm.Reason = reason;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3201, Level = LogLevel.Information, Message = "Draining node {NodeId}, {Parallel} migrations at a time ({Known} VMs known from an earlier run)")]
        public static partial void Draining(ILogger logger, Guid nodeId, int parallel, int known);

        [LoggerMessage(EventId = 3202, Level = LogLevel.Information, Message = "Drain of node {NodeId} ended: {Moved} VMs moved, {Left} left")]
        public static partial void Drained(ILogger logger, Guid nodeId, int moved, int left);
    }
}
