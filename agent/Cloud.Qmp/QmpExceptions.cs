namespace Cloud.Qmp;

/// <summary>Base of every failure the QMP client reports.</summary>
public class QmpException : Exception
{
    public QmpException(string message) : base(message) { }

    public QmpException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>QEMU answered a command with an error reply (<c>{"error": {"class", "desc"}}</c>).</summary>
public sealed class QmpCommandException(string command, string errorClass, string description)
    : QmpException($"QMP command '{command}' failed: {errorClass}: {description}")
{
    public string Command { get; } = command;

    /// <summary>QEMU's error class, e.g. GenericError, CommandNotFound, DeviceNotFound.</summary>
    public string ErrorClass { get; } = errorClass;

    public string Description { get; } = description;
}

/// <summary>The peer broke the protocol: a line that is not JSON, an unknown message shape, a reply too large.</summary>
public sealed class QmpProtocolException(string message, Exception? inner = null) : QmpException(message, inner);

/// <summary>No reply came within the command's timeout. QEMU may still carry the command out.</summary>
public sealed class QmpTimeoutException(string command, TimeSpan timeout)
    : QmpException($"QMP command '{command}' got no reply within {timeout.TotalSeconds:0.###} s.")
{
    public string Command { get; } = command;

    public TimeSpan Timeout { get; } = timeout;
}

/// <summary>The connection is closed (QEMU exited, the socket broke, or the client was disposed).</summary>
public sealed class QmpDisconnectedException(string message, Exception? inner = null) : QmpException(message, inner);
