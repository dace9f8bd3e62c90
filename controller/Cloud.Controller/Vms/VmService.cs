using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Operations;
using Cloud.Controller.Quotas;
using Cloud.Controller.Scheduling;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Vms;

/// <summary>
/// The compute API's logic, shared by the REST and the gRPC wire. Mutations only record an
/// operation (through the <see cref="OperationStarter"/>); the runner does the work.
/// </summary>
internal sealed class VmService(IDbContextFactory<LedgerDbContext> contexts, OperationStarter operations, IOptions<SchedulerOptions> scheduler)
{
    private const int DefaultPageSize = 50;
    private const int MaxPageSize = 500;

    public async Task<Operation> CreateAsync(Caller caller, CreateVmRequest request, CancellationToken cancellationToken)
    {
        caller.RequireWrite();
        VmValidation.Validate(request);
        var fromSnapshot = request.Snapshot.Length > 0;
        return await operations.StartAsync(caller, fromSnapshot ? OperationKinds.VmCreateFromSnapshot : OperationKinds.VmCreate, request, request.IdempotencyKey,
            fromSnapshot ? request : null, async (db, transaction, now) =>
        {
            var flavor = await Catalog.CatalogService.Usable(db, caller).SingleOrDefaultAsync(f => f.Name == request.Flavor, cancellationToken)
                ?? throw ApiException.NotFound("Flavor", request.Flavor);
            string? imageId = request.Image.Length == 0 ? null : request.Image;
            if (fromSnapshot)
            {
                var snapshotId = VmValidation.RequireId(request.Snapshot, "Snapshot");
                var snapshot = await db.Snapshots.AsNoTracking().SingleOrDefaultAsync(
                    s => s.Id == snapshotId && s.State != SnapshotStates.Deleted && (caller.IsOperator || s.ProjectId == caller.ProjectId), cancellationToken)
                    ?? throw ApiException.NotFound("Snapshot", request.Snapshot);
                SnapshotService.RequireReady(snapshot, request.Snapshot, "created from");
                imageId = SnapshotImageId(snapshotId);
            }
            if (request.Image.Length > 0)
            {
                await Images.ImageService.RequireUsableAsync(db, caller, request.Image, flavor.DiskGb, cancellationToken);
            }
            await RefuseOverQuotaAsync(db, caller, QuotaUsage.ForVm(flavor.Vcpus, flavor.MemoryMb, flavor.DiskGb), cancellationToken);
            var vm = NewVm(caller, request.Name, flavor, imageId, request.Labels, request.UserData, now);
            db.Vms.Add(vm);
            return vm.Id.ToString();
        }, cancellationToken);
    }

    /// <summary>
    /// A batch: its VM rows (PENDING, so they are listed at once) and one vm.create_batch
    /// operation, in one transaction. The whole batch's quota is checked here; the placed VMs are
    /// charged in the claim's transaction. The operation's target is the name prefix; its input
    /// lists the VMs, which the handler places together.
    /// </summary>
    public async Task<Operation> CreateBatchAsync(Caller caller, CreateVmsRequest request, CancellationToken cancellationToken)
    {
        caller.RequireWrite();
        VmValidation.Validate(request, scheduler.Value.MaxBatchSize);
        var minimum = request.Minimum == 0 ? request.Count : request.Minimum;
        // Filled in by prepare below, which runs before the starter records the input.
        var batch = new CreateVmsResult { Requested = request.Count, Minimum = minimum };
        return await operations.StartAsync(caller, OperationKinds.VmCreateBatch, request, request.IdempotencyKey, batch, async (db, _, now) =>
        {
            var flavor = await Catalog.CatalogService.Usable(db, caller).SingleOrDefaultAsync(f => f.Name == request.Flavor, cancellationToken)
                ?? throw ApiException.NotFound("Flavor", request.Flavor);
            if (request.Image.Length > 0)
            {
                await Images.ImageService.RequireUsableAsync(db, caller, request.Image, flavor.DiskGb, cancellationToken);
            }
            var count = request.Count;
            await RefuseOverQuotaAsync(db, caller, new QuotaUsage(count, count * flavor.Vcpus, count * flavor.MemoryMb, count * flavor.DiskGb, 0), cancellationToken);
            batch.Vms.Clear();
            for (var i = 1; i <= count; i++)
            {
                var vm = NewVm(caller, VmValidation.BatchVmName(request.NamePrefix, i), flavor, request.Image.Length == 0 ? null : request.Image,
                    request.Labels, request.UserData, now);
                db.Vms.Add(vm);
                batch.Vms.Add(new BatchVm { Id = vm.Id.ToString(), Name = vm.Name, State = vm.State });
            }
            return request.NamePrefix;
        }, cancellationToken);
    }

    private static VmEntity NewVm(Caller caller, string name, FlavorEntity flavor, string? imageId, IDictionary<string, string> labels, string userData, DateTimeOffset now) => new()
    {
        Id = Guid.CreateVersion7(),
        ProjectId = caller.ProjectId,
        Name = name,
        FlavorName = flavor.Name,
        ImageId = imageId,
        State = VmStates.Pending,
        Vcpus = flavor.Vcpus,
        MemoryMb = flavor.MemoryMb,
        DiskGb = flavor.DiskGb,
        Labels = new Dictionary<string, string>(labels),
        UserData = userData.Length == 0 ? null : userData,
        CreatedAt = now,
        UpdatedAt = now,
    };

    /// <summary>The id, in the node's image store, of the image a snapshot is exported to.</summary>
    internal static string SnapshotImageId(Guid snapshotId) => "snap-" + snapshotId.ToString("N");

    public Task<Operation> DeleteAsync(Caller caller, DeleteVmRequest request, CancellationToken cancellationToken)
        => operations.StartAsync(caller, OperationKinds.VmDelete, request, request.IdempotencyKey, null, async (db, _, now) =>
        {
            var id = VmValidation.RequireId(request.Id, "VM");
            // Delete does not wait for other operations: it is the way out of a stuck one.
            var vm = await db.Vms.SingleOrDefaultAsync(
                v => v.Id == id && v.State != VmStates.Deleted && (caller.IsOperator || v.ProjectId == caller.ProjectId), cancellationToken)
                ?? throw ApiException.NotFound("VM", request.Id);
            vm.State = VmStates.Deleting;
            vm.UpdatedAt = now;
            return vm.Id.ToString();
        }, cancellationToken);

    public Task<Operation> StartAsync(Caller caller, VmActionRequest request, CancellationToken cancellationToken)
        => VerbAsync(caller, OperationKinds.VmStart, request, request.Id, request.IdempotencyKey, null, [VmStates.Stopped, VmStates.Running], cancellationToken);

    public Task<Operation> StopAsync(Caller caller, StopVmRequest request, CancellationToken cancellationToken)
        => VerbAsync(caller, OperationKinds.VmStop, request, request.Id, request.IdempotencyKey, request, [VmStates.Running, VmStates.Stopped], cancellationToken);

    public Task<Operation> RebootAsync(Caller caller, VmActionRequest request, CancellationToken cancellationToken)
        => VerbAsync(caller, OperationKinds.VmReboot, request, request.Id, request.IdempotencyKey, null, [VmStates.Running], cancellationToken);

    public async Task<Operation> ResizeAsync(Caller caller, ResizeVmRequest request, CancellationToken cancellationToken)
    {
        caller.RequireWrite();
        if (request.Flavor.Length == 0)
        {
            throw ApiException.Invalid("flavor is required.");
        }
        VmValidation.RequireResourceName(request.Flavor, "flavor");
        return await operations.StartAsync(caller, OperationKinds.VmResize, request, request.IdempotencyKey, request, async (db, _, now) =>
        {
            var vm = await OperationStarter.LockVmAsync(db, caller, request.Id, cancellationToken);
            RequireState(vm, OperationKinds.VmResize, [VmStates.Running, VmStates.Stopped]);
            var flavor = await Catalog.CatalogService.Usable(db, caller).SingleOrDefaultAsync(f => f.Name == request.Flavor, cancellationToken)
                ?? throw ApiException.NotFound("Flavor", request.Flavor);
            if (flavor.DiskGb < vm.DiskGb)
            {
                throw new ApiException(StatusCode.FailedPrecondition, $"Flavor '{flavor.Name}' has a {flavor.DiskGb} GB disk; the VM's {vm.DiskGb} GB disk cannot shrink.");
            }
            if (flavor.Name == vm.FlavorName)
            {
                throw new ApiException(StatusCode.FailedPrecondition, $"The VM already has flavor '{flavor.Name}'.");
            }
            await RefuseOverQuotaAsync(db, caller, new QuotaUsage(0, flavor.Vcpus - vm.Vcpus, flavor.MemoryMb - vm.MemoryMb, flavor.DiskGb - vm.DiskGb, 0), cancellationToken);
            vm.UpdatedAt = now;
            return vm.Id.ToString();
        }, cancellationToken);
    }

    /// <summary>
    /// Live migration to a named node, or (no node named) to the one the scheduler chooses;
    /// operators only (tenants do not see nodes).
    /// </summary>
    public async Task<Operation> MigrateAsync(Caller caller, MigrateVmRequest request, CancellationToken cancellationToken)
    {
        caller.RequireOperator("migrate VMs");
        if (request.Node.Length > 0)
        {
            VmValidation.RequireName(request.Node, "node");
        }
        return await operations.StartAsync(caller, OperationKinds.VmMigrate, request, request.IdempotencyKey, request, async (db, _, now) =>
        {
            var vm = await OperationStarter.LockVmAsync(db, caller, request.Id, cancellationToken);
            RequireState(vm, OperationKinds.VmMigrate, [VmStates.Running, VmStates.Stopped]);
            if (request.Node.Length == 0)
            {
                vm.UpdatedAt = now;
                return vm.Id.ToString();
            }
            var node = await db.Nodes.AsNoTracking().SingleOrDefaultAsync(n => n.Name == request.Node, cancellationToken)
                ?? throw ApiException.NotFound("Node", request.Node);
            if (node.Id == vm.NodeId)
            {
                throw new ApiException(StatusCode.FailedPrecondition, $"VM '{request.Id}' already runs on node '{node.Name}'.");
            }
            if (node.State != NodeStates.Up)
            {
                throw new ApiException(StatusCode.FailedPrecondition, $"Node '{node.Name}' is {node.State}.");
            }
            vm.UpdatedAt = now;
            return vm.Id.ToString();
        }, cancellationToken);
    }

    public async Task<Vm> GetAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        var guid = VmValidation.RequireId(id, "VM");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var vm = await VisibleVms(db, caller).AsNoTracking().SingleOrDefaultAsync(v => v.Id == guid && v.State != VmStates.Deleted, cancellationToken)
            ?? throw ApiException.NotFound("VM", id);
        var nodeName = vm.NodeId is { } nodeId ? await db.Nodes.Where(n => n.Id == nodeId).Select(n => n.Name).SingleOrDefaultAsync(cancellationToken) : null;
        return ApiMapping.ToProto(vm, nodeName);
    }

    /// <summary>Newest first; the page token is the id of the last VM of the previous page.</summary>
    public async Task<ListVmsResponse> ListAsync(Caller caller, ListVmsRequest request, CancellationToken cancellationToken)
    {
        if (request.PageSize is < 0 or > MaxPageSize)
        {
            throw ApiException.Invalid($"page_size must be between 0 and {MaxPageSize}.");
        }
        var selector = LabelSelector.Parse(request.LabelSelector);
        var pageSize = request.PageSize == 0 ? DefaultPageSize : request.PageSize;
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var query = selector.Apply(VisibleVms(db, caller).AsNoTracking().Where(v => v.State != VmStates.Deleted));
        if (request.PageToken.Length > 0)
        {
            var after = Guid.TryParse(request.PageToken, out var token) ? token : throw ApiException.Invalid("page_token is invalid.");
            query = query.Where(v => v.Id.CompareTo(after) < 0);
        }
        var page = await query.OrderByDescending(v => v.Id).Take(pageSize + 1)
            .Select(v => new { Vm = v, NodeName = db.Nodes.Where(n => n.Id == v.NodeId).Select(n => n.Name).FirstOrDefault() })
            .ToListAsync(cancellationToken);
        var response = new ListVmsResponse();
        response.Vms.AddRange(page.Take(pageSize).Select(x => ApiMapping.ToProto(x.Vm, x.NodeName)));
        if (page.Count > pageSize)
        {
            response.NextPageToken = page[pageSize - 1].Vm.Id.ToString();
        }
        return response;
    }

    internal static IQueryable<VmEntity> VisibleVms(LedgerDbContext db, Caller caller)
        => caller.IsOperator ? db.Vms : db.Vms.Where(v => v.ProjectId == caller.ProjectId);

    private Task<Operation> VerbAsync(
        Caller caller, string kind, Google.Protobuf.IMessage request, string id, string idempotencyKey, Google.Protobuf.IMessage? input,
        string[] allowedStates, CancellationToken cancellationToken)
        => operations.StartAsync(caller, kind, request, idempotencyKey, input, async (db, _, now) =>
        {
            var vm = await OperationStarter.LockVmAsync(db, caller, id, cancellationToken);
            RequireState(vm, kind, allowedStates);
            vm.UpdatedAt = now;
            return vm.Id.ToString();
        }, cancellationToken);

    internal static void RequireState(VmEntity vm, string kind, string[] allowed)
    {
        if (vm.NodeId is null || !allowed.Contains(vm.State))
        {
            throw new ApiException(StatusCode.FailedPrecondition,
                $"{kind} needs a VM that is {string.Join(" or ", allowed)} on a node; VM '{vm.Id}' is {vm.State}.");
        }
    }

    /// <summary>
    /// Refuses at once what the quota already rules out, so the tenant hears it from its request.
    /// Not the authority: the charge in the claim's transaction is (two requests can both pass here).
    /// </summary>
    internal static async Task RefuseOverQuotaAsync(LedgerDbContext db, Caller caller, QuotaUsage asked, CancellationToken cancellationToken)
    {
        if (await QuotaLedger.ExcessAsync(db, caller.ProjectId, asked, cancellationToken) is { } excess)
        {
            throw new QuotaExceededException(excess).ToApi();
        }
    }
}
