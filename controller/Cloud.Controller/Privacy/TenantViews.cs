using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Contracts.Compute.V1;
using Google.Protobuf;

namespace Cloud.Controller.Privacy;

/// <summary>
/// What a tenant may see of the cloud's hosts, applied to every answer as it leaves (REST
/// bodies, gRPC messages, watch events, errors), so that no path forgets it: every message that
/// names a node gets its per-tenant <see cref="HostIds">host id</see>; for a tenant's token
/// (member or reader) the node's name is then cleared, and free texts (errors, reasons,
/// summaries) have node names and agent addresses replaced by the tenant's host id of the node.
/// Operators see everything, host ids included.
/// </summary>
internal sealed class TenantViews(HostIds hostIds, NodeNames nodeNames)
{
    /// <summary>Fills in host ids and, for a tenant, hides nodes, in <paramref name="message"/> and the messages it holds.</summary>
    public async Task ApplyAsync(Caller caller, IMessage? message, CancellationToken cancellationToken)
    {
        if (message is null || !NamesNodes(message))
        {
            return;
        }
        var key = await hostIds.KeyAsync(cancellationToken);
        var scrubber = caller.IsOperator ? null : await nodeNames.ScrubberAsync(cancellationToken);
        new View(caller, key, scrubber).Apply(message);
    }

    /// <summary>A refusal as <paramref name="caller"/> may read it: for a tenant, without node names or addresses.</summary>
    public async Task<ApiException> ApplyAsync(Caller caller, ApiException e, CancellationToken cancellationToken)
    {
        if (caller.IsOperator)
        {
            return e;
        }
        var view = new View(caller, await hostIds.KeyAsync(cancellationToken), await nodeNames.ScrubberAsync(cancellationToken));
        var message = view.Text(e.Message);
        return message == e.Message ? e : new ApiException(e.Code, message, e.Details);
    }

    private static bool NamesNodes(IMessage message) => message is Vm or ListVmsResponse or Snapshot or ListSnapshotsResponse
        or Operation or ListOperationsResponse or PlacementDecision or ListPlacementDecisionsResponse;

    private sealed class View(Caller caller, byte[] key, NodeTextScrubber? scrubber)
    {
        private bool Hides => scrubber is not null;

        public void Apply(IMessage message)
        {
            switch (message)
            {
                case Vm vm:
                    Apply(vm);
                    break;
                case ListVmsResponse list:
                    foreach (var vm in list.Vms)
                    {
                        Apply(vm);
                    }
                    break;
                case Snapshot snapshot:
                    Apply(snapshot);
                    break;
                case ListSnapshotsResponse list:
                    foreach (var snapshot in list.Snapshots)
                    {
                        Apply(snapshot);
                    }
                    break;
                case Operation operation:
                    Apply(operation);
                    break;
                case ListOperationsResponse list:
                    foreach (var operation in list.Operations)
                    {
                        Apply(operation);
                    }
                    break;
                case PlacementDecision decision:
                    Apply(decision);
                    break;
                case ListPlacementDecisionsResponse list:
                    foreach (var decision in list.Decisions)
                    {
                        Apply(decision);
                    }
                    break;
            }
        }

        public string Text(string text) => scrubber is null ? text : scrubber.Scrub(text, node => HostIds.Compute(key, caller.ProjectId, node));

        private string HostId(string project, string node) => HostIds.Compute(key, project.Length > 0 ? project : caller.ProjectId, node);

        private void Apply(Vm vm)
        {
            vm.HostId = HostId(vm.Project, vm.Node);
            if (Hides)
            {
                vm.Node = "";
                vm.Error = Text(vm.Error);
            }
        }

        private void Apply(Snapshot snapshot)
        {
            snapshot.HostId = HostId(snapshot.Project, snapshot.Node);
            if (Hides)
            {
                snapshot.Node = "";
                snapshot.Error = Text(snapshot.Error);
            }
        }

        private void Apply(Operation operation)
        {
            foreach (var vm in operation.Batch?.Vms ?? [])
            {
                vm.HostId = HostId(operation.Project, vm.Node);
                if (Hides)
                {
                    vm.Node = "";
                    vm.Error = Text(vm.Error);
                }
            }
            if (!Hides)
            {
                return;
            }
            operation.ErrorMessage = Text(operation.ErrorMessage);
            // A drain is an operator's operation; should one ever reach a tenant, it names no node.
            if (operation.Drain is { } drain)
            {
                foreach (var vm in drain.Vms)
                {
                    vm.Node = "";
                    vm.Reason = Text(vm.Reason);
                }
            }
        }

        private void Apply(PlacementDecision decision)
        {
            decision.HostId = HostId(decision.Project, decision.Node);
            if (!Hides)
            {
                return;
            }
            decision.Node = "";
            decision.Summary = Text(decision.Summary);
            decision.NearestMiss = Text(decision.NearestMiss);
            decision.RequestJson = Text(decision.RequestJson);
            foreach (var rejection in decision.Rejections)
            {
                rejection.Example = Text(rejection.Example);
            }
        }
    }
}
