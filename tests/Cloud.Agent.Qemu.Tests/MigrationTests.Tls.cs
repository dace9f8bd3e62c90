using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Cloud.Agent.Qemu.Tests.Support;
using Cloud.Contracts.Agent.V1;
using Grpc.Core;
using Phase = Cloud.Contracts.Agent.V1.MigrationProgress.Types.Phase;

namespace Cloud.Agent.Qemu.Tests;

/// <summary>Live migration with Agent:Qemu:TlsDirectory set: QEMU's streams over TLS, admitting the peer node only.</summary>
public sealed partial class MigrationTests
{
    [Fact]
    public async Task Migrate_OverTls_ArrivesRunning_WhilePlaintextClientsOfTheMigrationAndNbdPortsAreRefused()
    {
        using var certificates = new TestCertificates();
        var sourceNode = AgentServer.NodeNameFor("127.0.0.2");
        var destinationNode = AgentServer.NodeNameFor("127.0.0.3");
        await using var source = await AgentServer.StartAsync("127.0.0.2", certificates.NodeFolder(sourceNode, "127.0.0.2"));
        await using var destination = await AgentServer.StartAsync("127.0.0.3", certificates.NodeFolder(destinationNode, "127.0.0.3"));
        var spec = await LinuxSpecAsync(source, destination, "vm-tls");
        await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline);
        await SerialConsole.WaitForAsync(source.SerialLog("vm-tls"), t => t.Tick >= 2, Boot);

        var prepared = await destination.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-tls", PeerNode = sourceNode }, Deadline);
        var parameters = await QemuAsync(destination, "vm-tls", "query-migrate-parameters");
        Assert.Equal("migration-tls", parameters.GetProperty("tls-creds").GetString());
        Assert.Equal("migration-authz", parameters.GetProperty("tls-authz").GetString());
        Assert.Superset(new HashSet<string> { "migration-tls", "migration-authz" }, new HashSet<string>(await ObjectsAsync(destination, "vm-tls")));
        // QEMU read its certificate when the object was made: no copy of the key stays on disk.
        Assert.Empty(Directory.GetDirectories(destination.VmDirectory("vm-tls"), "tls-*"));

        // A plaintext client of the migration port: QEMU wants a TLS handshake and drops it.
        var (migrationHost, migrationPort) = HostPort(prepared.MigrationUri["tcp:".Length..]);
        Assert.True(await IsDroppedAsync(migrationHost, migrationPort, "QEVM\0\0\0\u0003"u8.ToArray()), "the migration port kept a plaintext connection open");
        // A plaintext NBD client, and one with a certificate of the same CA for another node.
        var disk = new Uri(prepared.DiskUri);
        var plain = await QemuImgInfoAsync($"nbd://{disk.Host}:{disk.Port}/disk0");
        Assert.NotEqual(0, plain.ExitCode);
        Assert.Contains("TLS negotiation required", plain.Output, StringComparison.Ordinal);
        var intruder = TestCertificates.ClientFolder(certificates.NodeFolder("intruder", "127.0.0.2"));
        var refused = await QemuImgInfoAsync("--object", $"tls-creds-x509,id=tls0,dir={intruder},endpoint=client",
            "--image-opts", $"driver=nbd,host={disk.Host},port={disk.Port.ToString(CultureInfo.InvariantCulture)},export=disk0,tls-creds=tls0");
        Assert.NotEqual(0, refused.ExitCode);
        var qemuLog = await Eventually.GetAsync(() => File.ReadAllTextAsync(Path.Combine(destination.VmDirectory("vm-tls"), "qemu.log")),
            l => l.Contains("authz check for O=cloud-qemu,CN=intruder is denied", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "QEMU to log the refused certificate");
        Assert.DoesNotContain($"CN={sourceNode} is denied", qemuLog, StringComparison.Ordinal);
        Assert.Equal(VmState.Incoming, (await ListAsync(destination)).Single().State);

        var lastBefore = SerialConsole.Ticks(source.SerialLog("vm-tls"))[^1].Tick;
        var progress = await MigrateAsync(source, new MigrateRequest
        {
            VmId = "vm-tls",
            MigrationId = "mig-tls",
            MigrationUri = prepared.MigrationUri,
            DiskUri = prepared.DiskUri,
            PeerNode = destinationNode,
            MaxBandwidthBytesPerSecond = 1L << 30,
        });

        Assert.True(progress[^1].Phase == Phase.Completed, $"the migration ended {progress[^1].Phase}: {progress[^1].Error}");
        Assert.Contains(progress, p => p.Phase == Phase.DiskMirror && p.TotalBytes > 0);
        await ArrivedAsync(destination, "vm-tls");
        var there = await SerialConsole.WaitForAsync(destination.SerialLog("vm-tls"), t => t.Tick > lastBefore, Boot);
        Assert.True(there.Tick > lastBefore);
        // Once arrived, the migration's TLS objects are gone: a later memory snapshot streams to the agent in the clear.
        await Eventually.GetAsync(async () => (await QemuAsync(destination, "vm-tls", "query-migrate-parameters")).GetProperty("tls-creds").GetString(),
            c => c == "", TimeSpan.FromSeconds(30), "the destination to drop its migration TLS");
        Assert.DoesNotContain(await ObjectsAsync(destination, "vm-tls"), o => o.StartsWith("migration-", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Migrate_OverTls_FromANodeHoldingAnotherNodesCertificate_IsRefused_AndTheGuestRunsOnAtTheSource()
    {
        using var certificates = new TestCertificates();
        var sourceNode = AgentServer.NodeNameFor("127.0.0.2");
        var destinationNode = AgentServer.NodeNameFor("127.0.0.3");
        // The source's QEMU certificate names another node: valid, from the cloud's CA, but not the peer the destination expects.
        await using var source = await AgentServer.StartAsync("127.0.0.2", certificates.NodeFolder("agent-127-0-0-9", "127.0.0.2"));
        await using var destination = await AgentServer.StartAsync("127.0.0.3", certificates.NodeFolder(destinationNode, "127.0.0.3"));
        var spec = new VmSpec { VmId = "vm-pinned", Name = "vm-pinned", Start = true, Shape = new VmShape { Vcpus = 1, MemoryMb = 128, DiskGb = 1 } };
        var created = await source.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline);

        // With TLS on, the peer must be named, and named as a node.
        var unnamed = await Assert.ThrowsAsync<RpcException>(async () => await destination.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-x" }, Deadline));
        Assert.Equal(StatusCode.InvalidArgument, unnamed.StatusCode);
        Assert.Contains("peer_node", unnamed.Status.Detail, StringComparison.Ordinal);
        var odd = await Assert.ThrowsAsync<RpcException>(async () => await destination.Client.PrepareMigrationAsync(
            new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-x", PeerNode = "CN=x,O=cloud-qemu" }, Deadline));
        Assert.Equal(StatusCode.InvalidArgument, odd.StatusCode);
        Assert.Empty(await ListAsync(destination));

        var prepared = await destination.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = "mig-pinned", PeerNode = sourceNode }, Deadline);
        var progress = await MigrateAsync(source, new MigrateRequest
        {
            VmId = "vm-pinned",
            MigrationId = "mig-pinned",
            MigrationUri = prepared.MigrationUri,
            DiskUri = prepared.DiskUri,
            PeerNode = destinationNode,
        });

        Assert.Equal(Phase.Failed, progress[^1].Phase);
        var log = File.ReadAllText(Path.Combine(destination.VmDirectory("vm-pinned"), "qemu.log"));
        Assert.Contains("authz check for O=cloud-qemu,CN=agent-127-0-0-9 is denied", log, StringComparison.Ordinal);
        var stayed = Assert.Single(await ListAsync(source));
        Assert.Equal((VmState.Running, created.Pid), (stayed.State, stayed.Pid));
        Assert.Equal("running", await QueryStatusAsync(source, "vm-pinned"));
        Assert.Equal("", (await QemuAsync(source, "vm-pinned", "query-migrate-parameters")).GetProperty("tls-creds").GetString());
        Assert.DoesNotContain(await ObjectsAsync(source, "vm-pinned"), o => o.StartsWith("migration-", StringComparison.Ordinal));
        await destination.Client.AbortMigrationAsync(new AbortMigrationRequest { VmId = "vm-pinned", MigrationId = "mig-pinned" }, Deadline);
        Assert.Empty(await ListAsync(destination));
    }

    /// <summary>The ids of the user-created objects in the VM's QEMU (qom-list /objects).</summary>
    private static async Task<List<string>> ObjectsAsync(AgentServer agent, string vmId)
    {
        var reply = await agent.Hypervisor.QueryQemuAsync(vmId, "qom-list", new System.Text.Json.Nodes.JsonObject { ["path"] = "/objects" }, CancellationToken.None)
            ?? throw new InvalidOperationException($"no QEMU runs {vmId}");
        return [.. reply.EnumerateArray().Select(o => o.GetProperty("name").GetString()!)];
    }

    [Fact]
    public void AuthzIdentity_IsTheQemuSubjectAsGnutlsWritesIt()
        // In the certificate's encoded order, no spaces: the string QEMU 7.2's tls-authz compares
        // (the TLS migration tests see a real QEMU admit one node and refuse another by it).
        => Assert.Equal("O=cloud-qemu,CN=node-b", MigrationTlsFiles.AuthzIdentity("node-b"));

    private static (string Host, int Port) HostPort(string text)
    {
        var colon = text.LastIndexOf(':');
        return (text[..colon], int.Parse(text[(colon + 1)..], CultureInfo.InvariantCulture));
    }

    /// <summary>Connects in plaintext, sends <paramref name="hello"/>, and reports whether the server closes the connection within 10 s.</summary>
    private static async Task<bool> IsDroppedAsync(string host, int port, byte[] hello)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Parse(host), port);
        var stream = client.GetStream();
        await stream.WriteAsync(hello);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                // A TLS server may answer a garbled hello with an alert before it closes.
                if (await stream.ReadAsync(buffer, deadline.Token) == 0)
                {
                    return true;
                }
            }
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task<(int ExitCode, string Output)> QemuImgInfoAsync(params string[] args)
    {
        var info = new ProcessStartInfo("qemu-img") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add("info");
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + stderr);
    }
}
