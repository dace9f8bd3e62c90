using System.Text.Json;

namespace Cloud.Qmp;

/// <summary>QEMU's version and capabilities from the greeting line of a connection.</summary>
public sealed record QmpGreeting(int Major, int Minor, int Micro, string Package, IReadOnlyList<string> Capabilities)
{
    public Version Version => new(Major, Minor, Micro);

    public override string ToString() => $"{Major}.{Minor}.{Micro}{(Package.Length > 0 ? " (" + Package.Trim() + ")" : "")}";
}

/// <summary>An asynchronous event QEMU sent, such as SHUTDOWN, STOP, RESUME or RESET.</summary>
/// <param name="Name">The event name, e.g. "SHUTDOWN".</param>
/// <param name="Data">The event's data object, or an empty object when it has none.</param>
/// <param name="Timestamp">When QEMU emitted it (QEMU's host clock).</param>
public sealed record QmpEvent(string Name, JsonElement Data, DateTimeOffset Timestamp);

/// <summary>Settings of a <see cref="QmpClient"/>, with defaults fit for a local QEMU.</summary>
public sealed class QmpClientOptions
{
    /// <summary>How long a command may wait for its reply unless the call says otherwise. Default 30 s.</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long connecting (including greeting and negotiation) may take, retries included. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Largest message accepted from QEMU. A peer that sends more without a newline is cut off:
    /// the largest real reply (query-qmp-schema) is a few hundred KiB. Default 8 MiB.
    /// </summary>
    public int MaxMessageBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>
    /// Events buffered for a reader that falls behind; past this the oldest are dropped (a state
    /// reconciler recovers with query-status). Default 4096.
    /// </summary>
    public int EventCapacity { get; set; } = 4096;

    /// <summary>Run a command on a closed client by reconnecting first. Default false.</summary>
    public bool ReconnectOnDemand { get; set; }

    internal void Validate()
    {
        if (CommandTimeout <= TimeSpan.Zero && CommandTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(CommandTimeout), "CommandTimeout must be positive.");
        }
        if (ConnectTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ConnectTimeout), "ConnectTimeout must be positive.");
        }
        if (MaxMessageBytes < 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxMessageBytes), "MaxMessageBytes must be at least 1024.");
        }
        if (EventCapacity < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(EventCapacity), "EventCapacity must be at least 1.");
        }
    }
}
