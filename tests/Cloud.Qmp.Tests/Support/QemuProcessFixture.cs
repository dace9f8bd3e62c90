using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Cloud.Qmp.Tests.Support;

/// <summary>A real qemu-system-x86_64 (TCG, no guest) whose monitor listens on a unix socket or loopback TCP.</summary>
internal sealed class QemuProcess : IAsyncDisposable
{
    private readonly Process _process;

    private QemuProcess(Process process, string directory, QmpEndpoint endpoint)
    {
        _process = process;
        Directory = directory;
        Endpoint = endpoint;
    }

    public string Directory { get; }

    public QmpEndpoint Endpoint { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public static QemuProcess StartUnix()
    {
        var dir = Path.Combine(Path.GetTempPath(), "qq-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(dir);
        var socket = Path.Combine(dir, "qmp.sock");
        return Start(dir, QmpEndpoint.Unix(socket), $"socket,id=qmp,path={socket},server=on,wait=off");
    }

    public static QemuProcess StartTcp()
    {
        var dir = Path.Combine(Path.GetTempPath(), "qq-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(dir);
        // Pick a free loopback port; QEMU binds it right after.
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return Start(dir, QmpEndpoint.Tcp(IPAddress.Loopback, port), $"socket,id=qmp,host=127.0.0.1,port={port},server=on,wait=off");
    }

    private static QemuProcess Start(string dir, QmpEndpoint endpoint, string chardev)
    {
        var info = new ProcessStartInfo("qemu-system-x86_64") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in new[] { "-machine", "q35,accel=tcg", "-nodefaults", "-display", "none", "-m", "64", "-chardev", chardev, "-mon", "chardev=qmp,mode=control" })
        {
            info.ArgumentList.Add(arg);
        }
        var process = Process.Start(info)!;
        return new QemuProcess(process, dir, endpoint);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
