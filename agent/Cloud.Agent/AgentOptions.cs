using System.ComponentModel.DataAnnotations;

namespace Cloud.Agent;

/// <summary>How the agent names itself, where it listens and whom it reports to. Section "Agent".</summary>
public sealed class AgentOptions
{
    public const string SectionName = "Agent";

    /// <summary>The node's name in the ledger; unique in the cloud. Default: the machine name.</summary>
    [Required, RegularExpression("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", ErrorMessage = "Agent:NodeName must be a DNS label (lowercase letters, digits, '-').")]
    public string NodeName { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>Address and port the NodeAgent gRPC service listens on (h2c). Default 127.0.0.2:7070.</summary>
    [Required]
    public string Listen { get; set; } = "127.0.0.2:7070";

    /// <summary>URL the controller uses to reach this agent. Default: http:// + <see cref="Listen"/>.</summary>
    public string? AdvertiseUrl { get; set; }

    /// <summary>The controller's gRPC URL. Default http://127.0.0.1:8081.</summary>
    [Required, Url]
    public string ControllerUrl { get; set; } = "http://127.0.0.1:8081";

    /// <summary>Hypervisor backend: "qemu" (real guests) or "fake" (simulated, for scale tests). Default qemu.</summary>
    [Required, RegularExpression("^(qemu|fake)$", ErrorMessage = "Agent:Backend must be 'qemu' or 'fake'.")]
    public string Backend { get; set; } = "qemu";

    /// <summary>Bearer token presented to the controller's node registry, if it requires one.</summary>
    public string? RegistrationToken { get; set; }

    /// <summary>Heartbeat period when the controller does not set one, 1 s to 5 min. Default 5 s.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    public string EffectiveAdvertiseUrl => AdvertiseUrl ?? "http://" + Listen;
}
