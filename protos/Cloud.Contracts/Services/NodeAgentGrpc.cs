using System.Diagnostics.CodeAnalysis;
using Cloud.Grpc;

namespace Cloud.Contracts.Agent.V1;

/// <summary>Wire bindings of cloud.agent.v1.NodeAgent: descriptors, server base and client.</summary>
public static class NodeAgentGrpc
{
    public const string ServiceName = "cloud.agent.v1.NodeAgent";

    public static readonly Method<GetNodeInfoRequest, NodeInfo> GetNodeInfoMethod = Methods.Unary<GetNodeInfoRequest, NodeInfo>(ServiceName, "GetNodeInfo");
    public static readonly Method<ListVmsRequest, ListVmsResponse> ListVmsMethod = Methods.Unary<ListVmsRequest, ListVmsResponse>(ServiceName, "ListVms");
    public static readonly Method<CreateVmRequest, Vm> CreateVmMethod = Methods.Unary<CreateVmRequest, Vm>(ServiceName, "CreateVm");
    public static readonly Method<StartVmRequest, Vm> StartVmMethod = Methods.Unary<StartVmRequest, Vm>(ServiceName, "StartVm");
    public static readonly Method<StopVmRequest, Vm> StopVmMethod = Methods.Unary<StopVmRequest, Vm>(ServiceName, "StopVm");
    public static readonly Method<VmRef, Vm> RebootVmMethod = Methods.Unary<VmRef, Vm>(ServiceName, "RebootVm");
    public static readonly Method<VmRef, DeleteVmResponse> DeleteVmMethod = Methods.Unary<VmRef, DeleteVmResponse>(ServiceName, "DeleteVm");
    public static readonly Method<ResizeVmRequest, Vm> ResizeVmMethod = Methods.Unary<ResizeVmRequest, Vm>(ServiceName, "ResizeVm");
    public static readonly Method<CreateSnapshotRequest, Snapshot> CreateSnapshotMethod = Methods.Unary<CreateSnapshotRequest, Snapshot>(ServiceName, "CreateSnapshot");
    public static readonly Method<VmRef, ListSnapshotsResponse> ListSnapshotsMethod = Methods.Unary<VmRef, ListSnapshotsResponse>(ServiceName, "ListSnapshots");
    public static readonly Method<SnapshotRef, Vm> RestoreSnapshotMethod = Methods.Unary<SnapshotRef, Vm>(ServiceName, "RestoreSnapshot");
    public static readonly Method<SnapshotRef, DeleteSnapshotResponse> DeleteSnapshotMethod = Methods.Unary<SnapshotRef, DeleteSnapshotResponse>(ServiceName, "DeleteSnapshot");
    public static readonly Method<ExportSnapshotRequest, ExportSnapshotResponse> ExportSnapshotMethod = Methods.Unary<ExportSnapshotRequest, ExportSnapshotResponse>(ServiceName, "ExportSnapshot");
    public static readonly Method<ReadSnapshotFileRequest, FileChunk> ReadSnapshotFileMethod = Methods.ServerStreaming<ReadSnapshotFileRequest, FileChunk>(ServiceName, "ReadSnapshotFile");
    public static readonly Method<ReadStoredImageRequest, FileChunk> ReadImageMethod = Methods.ServerStreaming<ReadStoredImageRequest, FileChunk>(ServiceName, "ReadImage");
    public static readonly Method<PullImageRequest, PullImageResponse> PullImageMethod = Methods.Unary<PullImageRequest, PullImageResponse>(ServiceName, "PullImage");
    public static readonly Method<DeleteImageRequest, DeleteImageResponse> DeleteImageMethod = Methods.Unary<DeleteImageRequest, DeleteImageResponse>(ServiceName, "DeleteImage");
    public static readonly Method<PrepareMigrationRequest, PrepareMigrationResponse> PrepareMigrationMethod = Methods.Unary<PrepareMigrationRequest, PrepareMigrationResponse>(ServiceName, "PrepareMigration");
    public static readonly Method<MigrateRequest, MigrationProgress> MigrateMethod = Methods.ServerStreaming<MigrateRequest, MigrationProgress>(ServiceName, "Migrate");
    public static readonly Method<AbortMigrationRequest, AbortMigrationResponse> AbortMigrationMethod = Methods.Unary<AbortMigrationRequest, AbortMigrationResponse>(ServiceName, "AbortMigration");
    public static readonly Method<WatchEventsRequest, VmEvent> WatchEventsMethod = Methods.ServerStreaming<WatchEventsRequest, VmEvent>(ServiceName, "WatchEvents");

    /// <summary>Server side: override what the server implements; the rest answers UNIMPLEMENTED.</summary>
    public abstract class NodeAgentBase
    {
        public virtual Task<NodeInfo> GetNodeInfo(GetNodeInfoRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "GetNodeInfo");
        public virtual Task<ListVmsResponse> ListVms(ListVmsRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListVms");
        public virtual Task<Vm> CreateVm(CreateVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "CreateVm");
        public virtual Task<Vm> StartVm(StartVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "StartVm");
        public virtual Task<Vm> StopVm(StopVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "StopVm");
        public virtual Task<Vm> RebootVm(VmRef request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "RebootVm");
        public virtual Task<DeleteVmResponse> DeleteVm(VmRef request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "DeleteVm");
        public virtual Task<Vm> ResizeVm(ResizeVmRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ResizeVm");
        public virtual Task<Snapshot> CreateSnapshot(CreateSnapshotRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "CreateSnapshot");
        public virtual Task<ListSnapshotsResponse> ListSnapshots(VmRef request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ListSnapshots");
        public virtual Task<Vm> RestoreSnapshot(SnapshotRef request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "RestoreSnapshot");
        public virtual Task<DeleteSnapshotResponse> DeleteSnapshot(SnapshotRef request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "DeleteSnapshot");
        public virtual Task<ExportSnapshotResponse> ExportSnapshot(ExportSnapshotRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ExportSnapshot");
        public virtual Task ReadSnapshotFile(ReadSnapshotFileRequest request, IServerStreamWriter<FileChunk> responseStream, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ReadSnapshotFile");
        public virtual Task ReadImage(ReadStoredImageRequest request, IServerStreamWriter<FileChunk> responseStream, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "ReadImage");
        public virtual Task<PullImageResponse> PullImage(PullImageRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "PullImage");
        public virtual Task<DeleteImageResponse> DeleteImage(DeleteImageRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "DeleteImage");
        public virtual Task<PrepareMigrationResponse> PrepareMigration(PrepareMigrationRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "PrepareMigration");
        public virtual Task Migrate(MigrateRequest request, IServerStreamWriter<MigrationProgress> responseStream, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "Migrate");
        public virtual Task<AbortMigrationResponse> AbortMigration(AbortMigrationRequest request, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "AbortMigration");
        public virtual Task WatchEvents(WatchEventsRequest request, IServerStreamWriter<VmEvent> responseStream, ServerCallContext context) => throw Methods.Unimplemented(ServiceName, "WatchEvents");
    }

    public static void BindService<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TService>(GrpcServiceBinder<TService> binder)
        where TService : NodeAgentBase
    {
        ArgumentNullException.ThrowIfNull(binder);
        binder.AddUnary(GetNodeInfoMethod, (s, r, c) => s.GetNodeInfo(r, c));
        binder.AddUnary(ListVmsMethod, (s, r, c) => s.ListVms(r, c));
        binder.AddUnary(CreateVmMethod, (s, r, c) => s.CreateVm(r, c));
        binder.AddUnary(StartVmMethod, (s, r, c) => s.StartVm(r, c));
        binder.AddUnary(StopVmMethod, (s, r, c) => s.StopVm(r, c));
        binder.AddUnary(RebootVmMethod, (s, r, c) => s.RebootVm(r, c));
        binder.AddUnary(DeleteVmMethod, (s, r, c) => s.DeleteVm(r, c));
        binder.AddUnary(ResizeVmMethod, (s, r, c) => s.ResizeVm(r, c));
        binder.AddUnary(CreateSnapshotMethod, (s, r, c) => s.CreateSnapshot(r, c));
        binder.AddUnary(ListSnapshotsMethod, (s, r, c) => s.ListSnapshots(r, c));
        binder.AddUnary(RestoreSnapshotMethod, (s, r, c) => s.RestoreSnapshot(r, c));
        binder.AddUnary(DeleteSnapshotMethod, (s, r, c) => s.DeleteSnapshot(r, c));
        binder.AddUnary(ExportSnapshotMethod, (s, r, c) => s.ExportSnapshot(r, c));
        binder.AddServerStreaming(ReadSnapshotFileMethod, (s, r, w, c) => s.ReadSnapshotFile(r, w, c));
        binder.AddServerStreaming(ReadImageMethod, (s, r, w, c) => s.ReadImage(r, w, c));
        binder.AddUnary(PullImageMethod, (s, r, c) => s.PullImage(r, c));
        binder.AddUnary(DeleteImageMethod, (s, r, c) => s.DeleteImage(r, c));
        binder.AddUnary(PrepareMigrationMethod, (s, r, c) => s.PrepareMigration(r, c));
        binder.AddServerStreaming(MigrateMethod, (s, r, w, c) => s.Migrate(r, w, c));
        binder.AddUnary(AbortMigrationMethod, (s, r, c) => s.AbortMigration(r, c));
        binder.AddServerStreaming(WatchEventsMethod, (s, r, w, c) => s.WatchEvents(r, w, c));
    }

    /// <summary>Client side of the node agent.</summary>
    public sealed class NodeAgentClient(CallInvoker invoker)
    {
        public Task<NodeInfo> GetNodeInfoAsync(GetNodeInfoRequest request, CallOptions options = default) => invoker.UnaryAsync(GetNodeInfoMethod, request, options);
        public Task<ListVmsResponse> ListVmsAsync(ListVmsRequest request, CallOptions options = default) => invoker.UnaryAsync(ListVmsMethod, request, options);
        public Task<Vm> CreateVmAsync(CreateVmRequest request, CallOptions options = default) => invoker.UnaryAsync(CreateVmMethod, request, options);
        public Task<Vm> StartVmAsync(StartVmRequest request, CallOptions options = default) => invoker.UnaryAsync(StartVmMethod, request, options);
        public Task<Vm> StopVmAsync(StopVmRequest request, CallOptions options = default) => invoker.UnaryAsync(StopVmMethod, request, options);
        public Task<Vm> RebootVmAsync(VmRef request, CallOptions options = default) => invoker.UnaryAsync(RebootVmMethod, request, options);
        public Task<DeleteVmResponse> DeleteVmAsync(VmRef request, CallOptions options = default) => invoker.UnaryAsync(DeleteVmMethod, request, options);
        public Task<Vm> ResizeVmAsync(ResizeVmRequest request, CallOptions options = default) => invoker.UnaryAsync(ResizeVmMethod, request, options);
        public Task<Snapshot> CreateSnapshotAsync(CreateSnapshotRequest request, CallOptions options = default) => invoker.UnaryAsync(CreateSnapshotMethod, request, options);
        public Task<ListSnapshotsResponse> ListSnapshotsAsync(VmRef request, CallOptions options = default) => invoker.UnaryAsync(ListSnapshotsMethod, request, options);
        public Task<Vm> RestoreSnapshotAsync(SnapshotRef request, CallOptions options = default) => invoker.UnaryAsync(RestoreSnapshotMethod, request, options);
        public Task<DeleteSnapshotResponse> DeleteSnapshotAsync(SnapshotRef request, CallOptions options = default) => invoker.UnaryAsync(DeleteSnapshotMethod, request, options);
        public Task<ExportSnapshotResponse> ExportSnapshotAsync(ExportSnapshotRequest request, CallOptions options = default) => invoker.UnaryAsync(ExportSnapshotMethod, request, options);
        public IAsyncServerStreamingCall<FileChunk> ReadSnapshotFile(ReadSnapshotFileRequest request, CallOptions options = default) => invoker.ServerStreaming(ReadSnapshotFileMethod, request, options);
        public IAsyncServerStreamingCall<FileChunk> ReadImage(ReadStoredImageRequest request, CallOptions options = default) => invoker.ServerStreaming(ReadImageMethod, request, options);
        public Task<PullImageResponse> PullImageAsync(PullImageRequest request, CallOptions options = default) => invoker.UnaryAsync(PullImageMethod, request, options);
        public Task<DeleteImageResponse> DeleteImageAsync(DeleteImageRequest request, CallOptions options = default) => invoker.UnaryAsync(DeleteImageMethod, request, options);
        public Task<PrepareMigrationResponse> PrepareMigrationAsync(PrepareMigrationRequest request, CallOptions options = default) => invoker.UnaryAsync(PrepareMigrationMethod, request, options);
        public IAsyncServerStreamingCall<MigrationProgress> Migrate(MigrateRequest request, CallOptions options = default) => invoker.ServerStreaming(MigrateMethod, request, options);
        public Task<AbortMigrationResponse> AbortMigrationAsync(AbortMigrationRequest request, CallOptions options = default) => invoker.UnaryAsync(AbortMigrationMethod, request, options);
        public IAsyncServerStreamingCall<VmEvent> WatchEvents(WatchEventsRequest request, CallOptions options = default) => invoker.ServerStreaming(WatchEventsMethod, request, options);
    }
}
