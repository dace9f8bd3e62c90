using System.Net;
using System.Net.Sockets;

namespace Cloud.Agent.Qemu;

/// <summary>
/// Hands out ports of the migration range on the listen address. A port is checked free by
/// binding it briefly; ports handed out stay reserved until released, so two migrations
/// prepared at once never get the same one.
/// </summary>
internal sealed class PortAllocator(PortRange range, IPAddress address)
{
    private readonly HashSet<int> _reserved = [];
    private readonly Lock _gate = new();

    public int Reserve()
    {
        lock (_gate)
        {
            if (range.IsEphemeral)
            {
                // The OS picks a port no one holds; QEMU binds it moments later. Another process
                // could take it in between, which the caller sees as a failed listen, not a mix-up.
                using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                socket.Bind(new IPEndPoint(address, 0));
                var picked = ((IPEndPoint)socket.LocalEndPoint!).Port;
                _reserved.Add(picked);
                return picked;
            }
            for (var port = range.First; port <= range.Last; port++)
            {
                if (_reserved.Contains(port) || !IsFree(port))
                {
                    continue;
                }
                _reserved.Add(port);
                return port;
            }
        }
        throw new Cloud.Agent.Hypervisor.HypervisorException(Cloud.Agent.Hypervisor.HypervisorError.ResourceExhausted,
            $"No free port left in the migration port range {range.First}-{range.Last} on {address}.");
    }

    public void Release(int port)
    {
        lock (_gate)
        {
            _reserved.Remove(port);
        }
    }

    private bool IsFree(int port)
    {
        try
        {
            using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(address, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
