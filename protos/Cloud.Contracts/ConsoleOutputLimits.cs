namespace Cloud.Contracts;

/// <summary>
/// How much of a console log one GetConsoleOutput call returns, the same on the agent and on the
/// public API: a bounded tail, so that a chatty guest cannot make one call move megabytes (Nova and
/// GCE bound theirs the same way).
/// </summary>
public static class ConsoleOutputLimits
{
    /// <summary>What a request that names no length gets: 64 KiB.</summary>
    public const int DefaultBytes = 64 * 1024;

    /// <summary>The most one call returns: 1 MiB, well under gRPC's default 4 MiB message limit.</summary>
    public const int MaxBytes = 1024 * 1024;

    /// <summary>The length a request asks for, with 0 meaning the default; null when it is out of bounds.</summary>
    public static int? Resolve(long requested) => requested switch
    {
        0 => DefaultBytes,
        > 0 and <= MaxBytes => (int)requested,
        _ => null,
    };
}
