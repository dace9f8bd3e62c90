using System.IO.Pipes;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Cloud.Qmp;

/// <summary>
/// Where a QEMU monitor listens: a unix socket (Linux, and Windows 10+), a TCP port on a
/// loopback address, or a named pipe (Windows builds of QEMU). Only loopback is accepted for TCP
/// because QMP has no authentication: whoever reaches the port owns the guest.
/// </summary>
public sealed partial class QmpEndpoint
{
    private QmpEndpoint(string? path, IPEndPoint? tcp, string? pipeName = null)
    {
        Path = path;
        TcpEndPoint = tcp;
        PipeName = pipeName;
    }

    /// <summary>Path of the unix socket, or null for a TCP endpoint or a pipe.</summary>
    public string? Path { get; }

    /// <summary>Loopback address and port, or null for a unix socket or a pipe.</summary>
    public IPEndPoint? TcpEndPoint { get; }

    /// <summary>Name of the local named pipe (\\.\pipe\NAME on Windows), or null.</summary>
    public string? PipeName { get; }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,200}$")]
    private static partial Regex SafePipeName();

    public static QmpEndpoint Unix(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        // sun_path holds 108 bytes on Linux including the terminator; longer paths fail obscurely in connect().
        if (System.Text.Encoding.UTF8.GetByteCount(path) > 107)
        {
            throw new ArgumentException($"Unix socket path '{path}' is longer than 107 bytes.", nameof(path));
        }
        return new QmpEndpoint(path, null);
    }

    public static QmpEndpoint Tcp(IPAddress address, int port)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (!IPAddress.IsLoopback(address))
        {
            throw new ArgumentException($"QMP over TCP is only allowed on a loopback address, not {address}.", nameof(address));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        return new QmpEndpoint(null, new IPEndPoint(address, port));
    }

    /// <summary>
    /// A named pipe on this machine. QEMU's <c>pipe</c> character device creates it as the server
    /// on Windows; on Linux .NET maps the name to a unix socket, which the tests use.
    /// </summary>
    public static QmpEndpoint Pipe(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        // A plain name: no server part, no path separators, nothing QEMU's option parser splits on.
        if (!SafePipeName().IsMatch(name))
        {
            throw new ArgumentException($"Pipe name '{name}' must be 1-200 letters, digits, '.', '_' or '-'.", nameof(name));
        }
        return new QmpEndpoint(null, null, name);
    }

    /// <summary>The QEMU <c>-chardev</c> backend options that make QEMU listen here.</summary>
    public string ToChardevOptions()
        => Path is not null ? $"socket,path={EscapeOption(Path)},server=on,wait=off"
            : PipeName is not null ? $"pipe,path={PipeName}"
            : $"socket,host={TcpEndPoint!.Address},port={TcpEndPoint.Port},server=on,wait=off";

    /// <summary>The whole <c>-chardev</c> value: the backend, its <paramref name="id"/>, its options.</summary>
    public string ToChardev(string id)
    {
        var options = ToChardevOptions();
        var comma = options.IndexOf(',', StringComparison.Ordinal);
        return $"{options[..comma]},id={EscapeOption(id)}{options[comma..]}";
    }

    /// <summary>QEMU option values use ',' as separator; a literal comma is written twice.</summary>
    public static string EscapeOption(string value) => value.Replace(",", ",,", StringComparison.Ordinal);

    /// <summary>Connects once; a pipe connect waits (until cancelled) for the server to create the pipe.</summary>
    internal async Task<Stream> ConnectAsync(CancellationToken cancellationToken)
    {
        if (PipeName is not null)
        {
            var pipe = new NamedPipeClientStream(".", PipeName, PipeDirection.InOut, PipeOptions.Asynchronous);
            try
            {
                await pipe.ConnectAsync(cancellationToken).ConfigureAwait(false);
                return pipe;
            }
            catch
            {
                await pipe.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
        Socket socket;
        EndPoint target;
        if (Path is not null)
        {
            socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            target = new UnixDomainSocketEndPoint(Path);
        }
        else
        {
            socket = new Socket(TcpEndPoint!.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            target = TcpEndPoint;
        }
        try
        {
            await socket.ConnectAsync(target, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public override string ToString() => Path is not null ? "unix:" + Path : PipeName is not null ? "pipe:" + PipeName : "tcp:" + TcpEndPoint;
}
