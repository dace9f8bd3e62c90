using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;
using Cloud.Contracts.Trust;
using Grpc.Core;

namespace Cloud.Agent.Rpc;

/// <summary>The NodeAgent gRPC service: validates each request and hands it to the backend.</summary>
internal sealed class NodeAgentService(IHypervisor hypervisor, ImagePuller images, SnapshotPuller snapshots, PeerAgents peers, IImageTarget imageStore) : NodeAgent.NodeAgentBase
{
    private static readonly TimeSpan DefaultStopTimeout = TimeSpan.FromSeconds(30);
    // Well under the 4 MiB a gRPC message may carry by default, large enough that framing costs little.
    private const int ChunkBytes = 1024 * 1024;

    public override Task<NodeInfo> GetNodeInfo(GetNodeInfoRequest request, ServerCallContext context)
        => hypervisor.GetNodeInfoAsync(context.CancellationToken);

    public override async Task<ListVmsResponse> ListVms(ListVmsRequest request, ServerCallContext context)
        => new ListVmsResponse { Vms = { await hypervisor.ListVmsAsync(context.CancellationToken) } };

    public override Task<Vm> CreateVm(CreateVmRequest request, ServerCallContext context)
        => hypervisor.CreateVmAsync(request.Spec ?? throw Invalid("spec is required."), context.CancellationToken);

    public override Task<Vm> StartVm(StartVmRequest request, ServerCallContext context)
        => hypervisor.StartVmAsync(VmId(request.VmId), request.Paused, context.CancellationToken);

    public override Task<Vm> StopVm(StopVmRequest request, ServerCallContext context)
    {
        if (request.TimeoutSeconds is < 0 or > 3600)
        {
            throw Invalid("timeout_seconds must be between 0 and 3600.");
        }
        var timeout = request.TimeoutSeconds == 0 ? DefaultStopTimeout : TimeSpan.FromSeconds(request.TimeoutSeconds);
        return hypervisor.StopVmAsync(VmId(request.VmId), request.Force, timeout, context.CancellationToken);
    }

    public override Task<Vm> RebootVm(VmRef request, ServerCallContext context)
        => hypervisor.RebootVmAsync(VmId(request.VmId), context.CancellationToken);

    public override async Task<DeleteVmResponse> DeleteVm(VmRef request, ServerCallContext context)
    {
        await hypervisor.DeleteVmAsync(VmId(request.VmId), context.CancellationToken);
        return new DeleteVmResponse();
    }

    public override Task<Vm> ResizeVm(ResizeVmRequest request, ServerCallContext context)
        => hypervisor.ResizeVmAsync(VmId(request.VmId), request.Shape ?? throw Invalid("shape is required."), request.AllowCold, context.CancellationToken);

    public override Task<Snapshot> CreateSnapshot(CreateSnapshotRequest request, ServerCallContext context)
        => hypervisor.CreateSnapshotAsync(VmId(request.VmId), SnapshotId(request.SnapshotId), request.Name, context.CancellationToken);

    public override async Task<ListSnapshotsResponse> ListSnapshots(VmRef request, ServerCallContext context)
        => new ListSnapshotsResponse { Snapshots = { await hypervisor.ListSnapshotsAsync(VmId(request.VmId), context.CancellationToken) } };

    public override Task<Vm> RestoreSnapshot(SnapshotRef request, ServerCallContext context)
        => hypervisor.RestoreSnapshotAsync(VmId(request.VmId), SnapshotId(request.SnapshotId), context.CancellationToken);

    public override async Task<DeleteSnapshotResponse> DeleteSnapshot(SnapshotRef request, ServerCallContext context)
    {
        await hypervisor.DeleteSnapshotAsync(VmId(request.VmId), SnapshotId(request.SnapshotId), context.CancellationToken);
        return new DeleteSnapshotResponse();
    }

    public override Task<ExportSnapshotResponse> ExportSnapshot(ExportSnapshotRequest request, ServerCallContext context)
        => hypervisor.ExportSnapshotAsync(VmId(request.VmId), SnapshotId(request.SnapshotId), Id(request.ImageId, "image_id"), context.CancellationToken);

    public override Task<PullImageResponse> PullImage(PullImageRequest request, ServerCallContext context)
        => images.PullAsync(request, context.CancellationToken);

    public override Task<DeleteImageResponse> DeleteImage(DeleteImageRequest request, ServerCallContext context)
        => images.DeleteAsync(request, context.CancellationToken);

    public override async Task ReadSnapshotFile(ReadSnapshotFileRequest request, IServerStreamWriter<FileChunk> responseStream, ServerCallContext context)
    {
        var files = hypervisor as ISnapshotFiles ?? throw new RpcException(new Status(StatusCode.Unimplemented, $"The {hypervisor.Name} backend keeps no snapshot files."));
        await using var stream = await files.OpenSnapshotFileAsync(VmId(request.VmId), SnapshotId(request.SnapshotId), request.Name, context.CancellationToken);
        await SendAsync(stream, responseStream, context.CancellationToken);
    }

    public override async Task ReadImage(ReadStoredImageRequest request, IServerStreamWriter<FileChunk> responseStream, ServerCallContext context)
    {
        await using var stream = imageStore.OpenRead(Id(request.ImageId, "image_id"));
        await SendAsync(stream, responseStream, context.CancellationToken);
    }

    /// <summary>
    /// Prepares the destination, then takes in every snapshot of the VM from the source before the
    /// stream may start; if any snapshot cannot be taken in, the destination drops what it prepared.
    /// </summary>
    public override async Task<PrepareMigrationResponse> PrepareMigration(PrepareMigrationRequest request, ServerCallContext context)
    {
        var spec = request.Spec ?? throw Invalid("spec is required.");
        var migrationId = Id(request.MigrationId, "migration_id");
        var source = request.SnapshotSource.Length > 0
            ? peers.Source(request.SnapshotSource, request.SnapshotGrant, PeerGrant.VmKind, spec.VmId, "snapshot_source")
            : null;
        var prepared = await hypervisor.PrepareMigrationAsync(spec, migrationId, request.MemoryLayout, request.PeerNode, context.CancellationToken);
        if (source is not null)
        {
            try
            {
                await snapshots.PullAllAsync(source, spec.VmId, context.CancellationToken);
            }
            catch
            {
                await hypervisor.AbortMigrationAsync(spec.VmId, migrationId, CancellationToken.None);
                throw;
            }
        }
        prepared.SnapshotIds.AddRange((await hypervisor.ListSnapshotsAsync(spec.VmId, context.CancellationToken)).Select(s => s.SnapshotId));
        return prepared;
    }

    public override async Task Migrate(MigrateRequest request, IServerStreamWriter<MigrationProgress> responseStream, ServerCallContext context)
    {
        VmId(request.VmId);
        Id(request.MigrationId, "migration_id");
        await foreach (var progress in hypervisor.MigrateAsync(request, context.CancellationToken))
        {
            await responseStream.WriteAsync(progress, context.CancellationToken);
        }
    }

    public override async Task<AbortMigrationResponse> AbortMigration(AbortMigrationRequest request, ServerCallContext context)
    {
        await hypervisor.AbortMigrationAsync(VmId(request.VmId), Id(request.MigrationId, "migration_id"), context.CancellationToken);
        return new AbortMigrationResponse();
    }

    public override async Task WatchEvents(WatchEventsRequest request, IServerStreamWriter<VmEvent> responseStream, ServerCallContext context)
    {
        await using var events = hypervisor.WatchEventsAsync(context.CancellationToken).GetAsyncEnumerator(context.CancellationToken);
        // Starting the enumeration subscribes; only then do the response headers tell the
        // client that no event from now on can be missed.
        var next = events.MoveNextAsync();
        await context.WriteResponseHeadersAsync(new Metadata());
        while (await next)
        {
            await responseStream.WriteAsync(events.Current, context.CancellationToken);
            next = events.MoveNextAsync();
        }
    }

    public override Task<ConsoleOutput> GetConsoleOutput(GetConsoleOutputRequest request, ServerCallContext context)
    {
        var maxBytes = Cloud.Contracts.ConsoleOutputLimits.Resolve(request.MaxBytes)
            ?? throw Invalid($"max_bytes must be between 1 and {Cloud.Contracts.ConsoleOutputLimits.MaxBytes}, or 0 for {Cloud.Contracts.ConsoleOutputLimits.DefaultBytes}.");
        return hypervisor.GetConsoleOutputAsync(VmId(request.VmId), maxBytes, context.CancellationToken);
    }

    private static async Task SendAsync(Stream stream, IServerStreamWriter<FileChunk> responseStream, CancellationToken cancellationToken)
    {
        var buffer = new byte[ChunkBytes];
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            await responseStream.WriteAsync(new FileChunk { Data = Google.Protobuf.ByteString.CopyFrom(buffer, 0, read) }, cancellationToken);
        }
    }

    private static string VmId(string id) => Id(id, "vm_id");

    private static string SnapshotId(string id) => Id(id, "snapshot_id");

    private static string Id(string id, string field)
        => VmSpecValidator.IsSafeId(id) ? id : throw Invalid($"{field} '{id}' is invalid: use 1-64 letters, digits, '-' or '_'.");

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
