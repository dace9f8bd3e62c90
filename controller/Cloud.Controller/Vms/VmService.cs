using System.Security.Cryptography;
using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Operations;
using Cloud.Contracts.Compute.V1;
using Cloud.Grpc;
using Google.Protobuf;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Vms;

/// <summary>
/// The compute API's logic, shared by the REST and the gRPC wire. Mutations only record an
/// operation and hand it to the <see cref="OperationQueue"/>; the runner does the work.
/// </summary>
internal sealed class VmService(IDbContextFactory<LedgerDbContext> contexts, OperationQueue queue, TimeProvider time)
{
    private const int DefaultPageSize = 50;
    private const int MaxPageSize = 500;

    public async Task<Operation> CreateAsync(Caller caller, CreateVmRequest request, CancellationToken cancellationToken)
    {
        VmValidation.Validate(request);
        VmValidation.RequireIdempotencyKey(NullIfEmpty(request.IdempotencyKey));
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);

        var requestHash = Hash(request);
        if (await FindIdempotentAsync(db, caller, request.IdempotencyKey, requestHash, cancellationToken) is { } earlier)
        {
            return earlier;
        }

        var flavor = await db.Flavors.AsNoTracking().SingleOrDefaultAsync(f => f.Name == request.Flavor, cancellationToken)
            ?? throw ApiException.NotFound("Flavor", request.Flavor);
        if (request.Image.Length > 0 && !await db.Images.AnyAsync(i => i.Id == request.Image, cancellationToken))
        {
            throw ApiException.NotFound("Image", request.Image);
        }

        var now = time.GetUtcNow();
        var vm = new VmEntity
        {
            Id = Guid.CreateVersion7(),
            ProjectId = caller.ProjectId,
            Name = request.Name,
            FlavorName = flavor.Name,
            ImageId = NullIfEmpty(request.Image),
            State = VmStates.Pending,
            Vcpus = flavor.Vcpus,
            MemoryMb = flavor.MemoryMb,
            DiskGb = flavor.DiskGb,
            Labels = new Dictionary<string, string>(request.Labels),
            UserData = NullIfEmpty(request.UserData),
            CreatedAt = now,
            UpdatedAt = now,
        };
        var operation = NewOperation(caller, OperationKinds.VmCreate, vm.Id.ToString(), request.IdempotencyKey, requestHash, now);
        db.Vms.Add(vm);
        db.Operations.Add(operation);
        if (!await TrySaveIdempotentAsync(db, cancellationToken))
        {
            return await FindIdempotentAsync(db, caller, request.IdempotencyKey, requestHash, cancellationToken)
                ?? throw new ApiException(StatusCode.Aborted, "A concurrent request with the same Idempotency-Key is in progress; retry.");
        }
        queue.Enqueue(operation.Id);
        return ApiMapping.ToProto(operation);
    }

    public async Task<Operation> DeleteAsync(Caller caller, DeleteVmRequest request, CancellationToken cancellationToken)
    {
        VmValidation.RequireIdempotencyKey(NullIfEmpty(request.IdempotencyKey));
        var id = VmValidation.RequireId(request.Id, "VM");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var requestHash = Hash(request);
        if (await FindIdempotentAsync(db, caller, request.IdempotencyKey, requestHash, cancellationToken) is { } earlier)
        {
            return earlier;
        }
        var vm = await VisibleVms(db, caller).SingleOrDefaultAsync(v => v.Id == id && v.State != VmStates.Deleted, cancellationToken)
            ?? throw ApiException.NotFound("VM", request.Id);

        var now = time.GetUtcNow();
        vm.State = VmStates.Deleting;
        vm.UpdatedAt = now;
        var operation = NewOperation(caller, OperationKinds.VmDelete, vm.Id.ToString(), request.IdempotencyKey, requestHash, now);
        db.Operations.Add(operation);
        if (!await TrySaveIdempotentAsync(db, cancellationToken))
        {
            return await FindIdempotentAsync(db, caller, request.IdempotencyKey, requestHash, cancellationToken)
                ?? throw new ApiException(StatusCode.Aborted, "The VM changed while it was being deleted; retry.");
        }
        queue.Enqueue(operation.Id);
        return ApiMapping.ToProto(operation);
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
        var pageSize = request.PageSize == 0 ? DefaultPageSize : request.PageSize;
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var query = VisibleVms(db, caller).AsNoTracking().Where(v => v.State != VmStates.Deleted);
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

    private static IQueryable<VmEntity> VisibleVms(LedgerDbContext db, Caller caller)
        => caller.IsOperator ? db.Vms : db.Vms.Where(v => v.ProjectId == caller.ProjectId);

    private static OperationEntity NewOperation(Caller caller, string kind, string targetId, string idempotencyKey, string requestHash, DateTimeOffset now) => new()
    {
        Id = Guid.CreateVersion7(),
        ProjectId = caller.ProjectId,
        Kind = kind,
        TargetId = targetId,
        State = OperationStates.Pending,
        Progress = 0,
        IdempotencyKey = NullIfEmpty(idempotencyKey),
        RequestHash = requestHash,
        CreatedAt = now,
        UpdatedAt = now,
    };

    /// <summary>
    /// A retry with a key already used returns the first request's operation; the same key with
    /// a different request is a client bug and is refused rather than silently answered.
    /// </summary>
    private static async Task<Operation?> FindIdempotentAsync(LedgerDbContext db, Caller caller, string key, string requestHash, CancellationToken cancellationToken)
    {
        if (key.Length == 0)
        {
            return null;
        }
        var earlier = await db.Operations.AsNoTracking()
            .SingleOrDefaultAsync(o => o.ProjectId == caller.ProjectId && o.IdempotencyKey == key, cancellationToken);
        if (earlier is null)
        {
            return null;
        }
        return earlier.RequestHash == requestHash
            ? ApiMapping.ToProto(earlier)
            : throw new ApiException(StatusCode.FailedPrecondition, $"Idempotency-Key '{key}' was already used for a different request.");
    }

    /// <summary>False when a concurrent request took the same idempotency key first.</summary>
    private static async Task<bool> TrySaveIdempotentAsync(LedgerDbContext db, CancellationToken cancellationToken)
    {
        try
        {
            await db.SaveChangesAsync(cancellationToken);
            return true;
        }
        catch (DbUpdateException e) when (e.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation })
        {
            db.ChangeTracker.Clear();
            return false;
        }
        catch (DbUpdateConcurrencyException)
        {
            db.ChangeTracker.Clear();
            return false;
        }
    }

    /// <summary>Identifies a request's content, to tell a retry from a different request under the same key.</summary>
    private static string Hash(IMessage request) => Convert.ToHexStringLower(SHA256.HashData(request.ToByteArray()));

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
