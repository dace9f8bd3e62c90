using System.Text;
using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
using Cloud.Contracts;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Vms;

/// <summary>
/// A VM's serial console output (Nova's os-getConsoleOutput, GCE's getSerialPortOutput): the
/// tail of the console log, read from the VM's node while the caller waits. The one API read that
/// goes to an agent rather than to the ledger, so the caller's deadline travels with it.
/// </summary>
internal sealed class ConsoleOutputService(IDbContextFactory<LedgerDbContext> contexts, AgentConnections agents)
{
    /// <summary>The tail of the VM's console; <paramref name="callerDeadline"/> is the API caller's deadline (gRPC), or <see cref="DateTime.MaxValue"/> (REST).</summary>
    public async Task<ConsoleOutput> GetAsync(Caller caller, GetConsoleOutputRequest request, DateTime callerDeadline, CancellationToken cancellationToken)
    {
        // Before anything is looked up, as a reader's mutation is refused: a refusal reveals nothing.
        if (!caller.CanWrite)
        {
            throw new ApiException(StatusCode.PermissionDenied,
                "Reading a VM's console output needs a member's or an operator's token: the output may show secrets the guest printed.");
        }
        var length = ConsoleOutputLimits.Resolve(request.Length)
            ?? throw ApiException.Invalid($"length must be between 1 and {ConsoleOutputLimits.MaxBytes} bytes, or 0 for {ConsoleOutputLimits.DefaultBytes}.");
        var id = VmValidation.RequireId(request.Id, "VM");
        string nodeName, address;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            var vm = await VmService.VisibleVms(db, caller).AsNoTracking()
                .Where(v => v.Id == id && v.State != VmStates.Deleted)
                .Select(v => new { v.State, v.NodeId })
                .SingleOrDefaultAsync(cancellationToken)
                ?? throw ApiException.NotFound("VM", request.Id);
            if (vm.NodeId is not { } nodeId || vm.State is VmStates.Deleting)
            {
                throw new ApiException(StatusCode.FailedPrecondition, $"VM '{id}' is {vm.State} and on no node: it has no console output.");
            }
            var node = await db.Nodes.AsNoTracking().Where(n => n.Id == nodeId).Select(n => new { n.Name, n.Address }).SingleAsync(cancellationToken);
            (nodeName, address) = (node.Name, node.Address);
        }

        AgentV1.ConsoleOutput answer;
        try
        {
            answer = await agents.For(nodeName, address).CallAsync(
                (client, options) => client.GetConsoleOutputAsync(new AgentV1.GetConsoleOutputRequest { VmId = id.ToString("N"), MaxBytes = length }, options),
                callerDeadline, cancellationToken);
        }
        catch (RpcException e)
        {
            throw e.StatusCode == StatusCode.NotFound
                // Placed, but its node does not hold it yet (being created) or any more.
                ? new ApiException(StatusCode.FailedPrecondition, $"VM '{id}' is not on node {nodeName} at the moment: it has no console output there.")
                : new ApiException(e.StatusCode, $"Node {nodeName}: {e.Status.Detail}");
        }
        return new ConsoleOutput
        {
            VmId = id.ToString(),
            Output = Decode(answer.Data.Span, answer.Start > 0),
            Start = answer.Start,
            TotalBytes = answer.TotalBytes,
        };
    }

    /// <summary>The bytes as text; a character the tail cut in two at its start is left out.</summary>
    internal static string Decode(ReadOnlySpan<byte> data, bool cut)
    {
        if (cut)
        {
            // At most three continuation bytes (10xxxxxx) can precede a UTF-8 character's start.
            var skip = 0;
            while (skip < 3 && skip < data.Length && (data[skip] & 0xC0) == 0x80)
            {
                skip++;
            }
            data = data[skip..];
        }
        return Encoding.UTF8.GetString(data);
    }
}
