using System.Text.Json.Serialization;

namespace Cloud.Agent.Qemu;

/// <summary>Source-generated serializers for everything the backend writes to disk or to QEMU.</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true)]
[JsonSerializable(typeof(BlockdevArgument))]
[JsonSerializable(typeof(ImageManifest))]
[JsonSerializable(typeof(SnapshotRecord))]
[JsonSerializable(typeof(RuntimeRecord))]
[JsonSerializable(typeof(MigrationRecord))]
internal sealed partial class QemuJsonContext : JsonSerializerContext;
