using System.Net;
using System.Net.Sockets;

namespace Cloud.Qmp;

/// <summary>
/// Where a QEMU monitor listens: a unix socket (Linux, and Windows 10+), or a TCP port on a
/// loopback address (Windows builds of QEMU). Only loopback is accepted for TCP because QMP has
/// no authentication: whoever reaches the port owns the guest.
/// </summary>
public sealed class QmpEndpoint
{
    private QmpEndpoint(string? path, IPEndPoint? tcp)
    {
        Path = path;
        TcpEndPoint = tcp;
    }

    /// <summary>Path of the unix socket, or null for a TCP endpoint.</summary>
    public string? Path { get; }

    /// <summary>Loopback address and port, or null for a unix socket.</summary>
    public IPEndPoint? TcpEndPoint { get; }

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

    /// <summary>The QEMU <c>-chardev</c> backend options that make QEMU listen here.</summary>
    public string ToChardevOptions()
        => Path is not null
            ? $"socket,path={EscapeOption(Path)},server=on,wait=off"
            : $"socket,host={TcpEndPoint!.Address},port={TcpEndPoint.Port},server=on,wait=off";

    /// <summary>QEMU option values use ',' as separator; a literal comma is written twice.</summary>
    public static string EscapeOption(string value) => value.Replace(",", ",,", StringComparison.Ordinal);

    internal async Task<Socket> ConnectAsync(CancellationToken cancellationToken)
    {
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
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public override string ToString() => Path is not null ? "unix:" + Path : "tcp:" + TcpEndPoint;
}
