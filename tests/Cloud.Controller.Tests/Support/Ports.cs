using System.Net;
using System.Net.Sockets;

namespace Cloud.Controller.Tests.Support;

internal static class Ports
{
    /// <summary>A port free on <paramref name="address"/> right now (the OS picks it).</summary>
    public static int Free(IPAddress address)
    {
        using var listener = new TcpListener(address, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
