using Cloud.Controller.Data;
using Cloud.Contracts.Compute.V1;
using Google.Protobuf.WellKnownTypes;

namespace Cloud.Controller.Api;

/// <summary>Rows of the ledger as messages of the compute API.</summary>
internal static class ApiMapping
{
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

    public static Operation ToProto(OperationEntity operation) => new()
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
    };
}
