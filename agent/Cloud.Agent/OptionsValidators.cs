using Cloud.Agent.Hypervisor.Fake;
using Microsoft.Extensions.Options;

namespace Cloud.Agent;

// The data-annotation rules of the options classes are checked by generated code rather than by
// ValidateDataAnnotations, which reads the attributes through reflection: the agent is published
// with Native AOT, where that reflection is not guaranteed to find them.

/// <summary>The attribute rules of <see cref="AgentOptions"/>.</summary>
[OptionsValidator]
internal sealed partial class AgentOptionsValidator : IValidateOptions<AgentOptions>;

/// <summary>The attribute rules of <see cref="FakeHypervisorOptions"/>.</summary>
[OptionsValidator]
internal sealed partial class FakeHypervisorOptionsValidator : IValidateOptions<FakeHypervisorOptions>;

/// <summary>
/// What attributes cannot say without reflection: a TimeSpan range (RangeAttribute parses its
/// bounds through a TypeConverter, which trimming may remove).
/// </summary>
internal sealed class AgentOptionsRules : IValidateOptions<AgentOptions>
{
    internal static readonly TimeSpan MinHeartbeat = TimeSpan.FromSeconds(1);
    internal static readonly TimeSpan MaxHeartbeat = TimeSpan.FromMinutes(5);

    public ValidateOptionsResult Validate(string? name, AgentOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.HeartbeatInterval < MinHeartbeat || options.HeartbeatInterval > MaxHeartbeat
            ? ValidateOptionsResult.Fail($"Agent:HeartbeatInterval {options.HeartbeatInterval} must be between {MinHeartbeat} and {MaxHeartbeat}.")
            : ValidateOptionsResult.Success;
    }
}
