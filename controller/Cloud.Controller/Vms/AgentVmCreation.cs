using Cloud.Controller.Data;
using Cloud.Controller.Nodes;
using Cloud.Controller.Quotas;
using Cloud.Controller.Scheduling;
using Grpc.Core;
using Npgsql;
using AgentV1 = Cloud.Contracts.Agent.V1;

namespace Cloud.Controller.Vms;

/// <summary>An agent's refusal to create a VM: its code, and the message the VM and the operation show.</summary>
internal sealed record AgentRefusal(StatusCode Code, string Message);

/// <summary>
/// The part of creating a VM that happens on its node, shared by vm.create and vm.create_batch:
/// the image brought to the node, the agent's create (idempotent, so a resumed operation asks
/// again), and, when the agent refuses, the claim and the quota given back in the caller's
/// transaction.
/// </summary>
internal sealed partial class AgentVmCreation(
    Scheduler scheduler,
    AgentConnections agents,
    Images.ImageDistribution images,
    VmSpecs specs,
    ILogger<AgentVmCreation> logger)
{
    /// <summary>
    /// Brings the VM's image to the node (once per node is enough for a batch of one image, so
    /// <paramref name="withImage"/> can skip it) and asks the node's agent to create and start
    /// the VM; null when it did.
    /// </summary>
    public async Task<AgentRefusal?> CreateAsync(VmEntity vm, NodeEntity node, bool withImage, CancellationToken cancellationToken)
    {
        var agent = agents.For(node);
        try
        {
            if (withImage)
            {
                await images.EnsureOnNodeAsync(vm.ImageId, node.Id, agent, cancellationToken);
            }
            await agent.CallAsync((client, options) => client.CreateVmAsync(new AgentV1.CreateVmRequest { Spec = specs.For(vm) }, options), cancellationToken);
            return null;
        }
        catch (RpcException e)
        {
            Log.AgentRefused(logger, vm.Id, node.Name, e.Status.Detail);
            return new AgentRefusal(e.StatusCode, $"Node {node.Name} could not create the VM: {e.Status.Detail}");
        }
    }

    /// <summary>Brings an image to a node before its VMs are created; null when it is there (or there is none).</summary>
    public async Task<AgentRefusal?> EnsureImageAsync(string? imageId, NodeEntity node, CancellationToken cancellationToken)
    {
        try
        {
            await images.EnsureOnNodeAsync(imageId, node.Id, agents.For(node), cancellationToken);
            return null;
        }
        catch (RpcException e)
        {
            Log.ImageRefused(logger, imageId ?? "", node.Name, e.Status.Detail);
            return new AgentRefusal(e.StatusCode, $"Node {node.Name} could not get image {imageId}: {e.Status.Detail}");
        }
    }

    /// <summary>
    /// Gives back what a placed VM holds (its quota charge, then its claim) and leaves it in
    /// ERROR with the reason, in the caller's transaction. The quota goes first: the VM's node is
    /// what proves the charge is still held.
    /// </summary>
    public async Task ReleaseAsync(NpgsqlTransaction transaction, Guid vmId, string reason, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await QuotaLedger.ReleaseVmAsync(transaction, vmId, cancellationToken);
        await scheduler.ReleaseAsync(vmId, null, transaction, cancellationToken);
        await VmRowUpdates.MarkUnplacedAsync(transaction, vmId, VmStates.Error, reason, now, cancellationToken);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "Node {NodeName} refused to create VM {VmId}: {Detail}")]
        public static partial void AgentRefused(ILogger logger, Guid vmId, string nodeName, string detail);

        [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Node {NodeName} could not get image {ImageId}: {Detail}")]
        public static partial void ImageRefused(ILogger logger, string imageId, string nodeName, string detail);
    }
}
