using System.ComponentModel.DataAnnotations;

namespace Cloud.Controller.Hosting;

/// <summary>Where the controller listens and which database it uses. Section "Controller".</summary>
public sealed class ControllerOptions
{
    public const string SectionName = "Controller";

    /// <summary>REST/JSON endpoint (HTTP/1.1 and HTTP/2, over TLS). Default 127.0.0.1:8080.</summary>
    [Required]
    public string RestListen { get; set; } = "127.0.0.1:8080";

    /// <summary>gRPC endpoint: the compute API. Default 127.0.0.1:8081.</summary>
    [Required]
    public string GrpcListen { get; set; } = "127.0.0.1:8081";

    /// <summary>
    /// The node port: what agents call (join, renewal, registry, heartbeats, image pulls), over
    /// mutual TLS with certificates from the cloud CA, and nothing else. Default 127.0.0.1:8082.
    /// </summary>
    [Required]
    public string NodeListen { get; set; } = "127.0.0.1:8082";

    /// <summary>
    /// Folder of the embedded PostgreSQL cluster, used when ConnectionStrings:Ledger is empty.
    /// Default .cloud/postgres under the working directory.
    /// </summary>
    public string EmbeddedDatabaseDirectory { get; set; } = Path.Combine(".cloud", "postgres");

    /// <summary>
    /// Apply migrations when the process starts. Default false: production applies them with the
    /// explicit `migrate` command. The embedded database always migrates at start.
    /// </summary>
    public bool MigrateOnStart { get; set; }
}
