using Cloud.Controller.Data;
using Cloud.Contracts.Compute.V1;
using Google.Protobuf.WellKnownTypes;

namespace Cloud.Controller.Api;

/// <summary>Rows of the ledger as messages of the compute API.</summary>
internal static class ApiMapping
{
    private static readonly Google.Protobuf.JsonParser Parser = new(Google.Protobuf.JsonParser.Settings.Default.WithIgnoreUnknownFields(true));

    public static Vm ToProto(VmEntity vm, string? nodeName)
    {
        var message = new Vm
        {
            Id = vm.Id.ToString(),
            Name = vm.Name,
            Flavor = vm.FlavorName,
            Image = vm.ImageId ?? "",
            State = vm.State,
            Node = nodeName ?? "",
            Project = vm.ProjectId,
            Vcpus = vm.Vcpus,
            MemoryMb = vm.MemoryMb,
            DiskGb = vm.DiskGb,
            Error = vm.Error ?? "",
            CreatedAt = Timestamp.FromDateTimeOffset(vm.CreatedAt),
            UpdatedAt = Timestamp.FromDateTimeOffset(vm.UpdatedAt),
        };
        message.Labels.Add(vm.Labels);
        return message;
    }

    public static Operation ToProto(OperationEntity operation)
    {
        var message = ToProtoWithoutResult(operation);
        // A batch shows its VMs from the start (the handler's input lists them), and what became
        // of each once it ended.
        if (operation.Kind == Operations.OperationKinds.VmCreateBatch && (operation.Result ?? operation.Request) is { } batch)
        {
            message.Batch = Parser.Parse<CreateVmsResult>(batch);
        }
        if (operation.Kind == Operations.OperationKinds.NodeDrain && operation.Result is { } drain)
        {
            message.Drain = Parser.Parse<DrainNodeResult>(drain);
        }
        if (operation.Kind == Operations.OperationKinds.TenantDelete && operation.Result is { } deletion)
        {
            message.TenantDeletion = Parser.Parse<TenantDeletion>(deletion);
        }
        return message;
    }

    private static Operation ToProtoWithoutResult(OperationEntity operation) => new()
    {
        Id = operation.Id.ToString(),
        Kind = operation.Kind,
        TargetId = operation.TargetId,
        State = operation.State,
        Progress = operation.Progress,
        ErrorCode = operation.ErrorCode ?? "",
        ErrorMessage = operation.ErrorMessage ?? "",
        CreatedAt = Timestamp.FromDateTimeOffset(operation.CreatedAt),
        UpdatedAt = Timestamp.FromDateTimeOffset(operation.UpdatedAt),
        Recovery = operation.Recovery ?? "",
        Project = operation.ProjectId,
    };

    public static Snapshot ToProto(SnapshotEntity snapshot, string? nodeName) => new()
    {
        Node = nodeName ?? "",
        Project = snapshot.ProjectId,
        Id = snapshot.Id.ToString(),
        VmId = snapshot.VmId.ToString(),
        Name = snapshot.Name,
        State = snapshot.State,
        IncludesMemory = snapshot.IncludesMemory,
        SizeBytes = snapshot.SizeBytes,
        Error = snapshot.Error ?? "",
        CreatedAt = Timestamp.FromDateTimeOffset(snapshot.CreatedAt),
    };

    public static Tenant ToProto(TenantEntity tenant) => new()
    {
        Id = tenant.Id,
        DisplayName = tenant.DisplayName,
        Quota = new Quota
        {
            Instances = tenant.MaxInstances, Vcpus = tenant.MaxVcpus, MemoryMb = tenant.MaxMemoryMb, DiskGb = tenant.MaxDiskGb, Snapshots = tenant.MaxSnapshots,
            Images = tenant.MaxImages, ImageGb = tenant.MaxImageGb,
        },
        Usage = new Quota
        {
            Instances = tenant.UsedInstances, Vcpus = tenant.UsedVcpus, MemoryMb = tenant.UsedMemoryMb, DiskGb = tenant.UsedDiskGb, Snapshots = tenant.UsedSnapshots,
            Images = tenant.UsedImages, ImageGb = tenant.UsedImageGb,
        },
        CreatedAt = Timestamp.FromDateTimeOffset(tenant.CreatedAt),
        State = tenant.DeletingSince is null ? "ACTIVE" : "DELETING",
    };

    public static ApiToken ToProto(ApiTokenEntity token) => new()
    {
        Id = token.Id.ToString(),
        Tenant = token.TenantId ?? "",
        Name = token.Name,
        Role = token.Role,
        CreatedAt = Timestamp.FromDateTimeOffset(token.CreatedAt),
        ExpiresAt = token.ExpiresAt is { } expires ? Timestamp.FromDateTimeOffset(expires) : null,
        RevokedAt = token.RevokedAt is { } revoked ? Timestamp.FromDateTimeOffset(revoked) : null,
    };

    public static Flavor ToProto(FlavorEntity flavor) => new()
    {
        Name = flavor.Name,
        Vcpus = flavor.Vcpus,
        MemoryMb = flavor.MemoryMb,
        DiskGb = flavor.DiskGb,
        IsPublic = flavor.IsPublic,
    };

    public static Image ToProto(ImageEntity image) => new()
    {
        Id = image.Id,
        Name = image.Name,
        Format = image.Format,
        Sha256 = image.Sha256,
        SizeBytes = image.SizeBytes,
        Owner = image.ProjectId,
        Visibility = image.Visibility,
        State = image.State,
        MinDiskGb = image.MinDiskGb,
        VirtualSizeBytes = image.VirtualSizeBytes,
        Error = image.Error ?? "",
        CreatedAt = Timestamp.FromDateTimeOffset(image.CreatedAt),
        UpdatedAt = Timestamp.FromDateTimeOffset(image.UpdatedAt),
    };
}
