using System.ComponentModel.DataAnnotations;

namespace Cloud.Agent;

/// <summary>How the agent names itself, where it listens and whom it reports to. Section "Agent".</summary>
public sealed class AgentOptions
{
    public const string SectionName = "Agent";

    /// <summary>The node's name in the ledger; unique in the cloud. Default: the machine name.</summary>
    [Required, RegularExpression("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", ErrorMessage = "Agent:NodeName must be a DNS label (lowercase letters, digits, '-').")]
    public string NodeName { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>Address and port the NodeAgent gRPC service listens on (mutual TLS). Default 127.0.0.2:7070.</summary>
    [Required]
    public string Listen { get; set; } = "127.0.0.2:7070";

    /// <summary>URL the controller uses to reach this agent. Default: https:// + <see cref="Listen"/>.</summary>
    public string? AdvertiseUrl { get; set; }

    /// <summary>The controller's node port (Controller:NodeListen). Default https://127.0.0.1:8082.</summary>
    [Required, Url]
    public string ControllerUrl { get; set; } = "https://127.0.0.1:8082";

    /// <summary>Hypervisor backend: "qemu" (real guests) or "fake" (simulated, for scale tests). Default qemu.</summary>
    [Required, RegularExpression("^(qemu|fake)$", ErrorMessage = "Agent:Backend must be 'qemu' or 'fake'.")]
    public string Backend { get; set; } = "qemu";

    /// <summary>
    /// This node's TLS folder: ca.pem, the cloud CA, put there by the operator; node.pem and
    /// node.key (the agent's certificate) and qemu.pem and qemu.key (QEMU's, for migrations),
    /// written by the agent when it joins and renews. Default /var/lib/cloud-agent/tls.
    /// </summary>
    [Required]
    public string TlsDirectory { get; set; } = "/var/lib/cloud-agent/tls";

    /// <summary>
    /// A join token for this node (cloudctl node join-token NAME), used when the TLS folder holds
    /// no valid certificate: at the first start, or after the certificate expired.
    /// </summary>
    public string? JoinToken { get; set; }

    /// <summary>A file holding the join token, read each time one is needed (so a new one can be dropped in).</summary>
    public string? JoinTokenFile { get; set; }

    /// <summary>Heartbeat period when the controller does not set one, 1 s to 5 min. Default 5 s.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    public string EffectiveAdvertiseUrl => AdvertiseUrl ?? "https://" + Listen;
}
