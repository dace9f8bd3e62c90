using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using Cloud.Contracts.Agent.V1;
using Cloud.Contracts.Trust;

namespace Cloud.Agent.Qemu.Benchmarks;

/// <summary>
/// What QEMU's TLS costs a live migration: the same busy guest (256 MiB, 160 MiB of it random
/// bytes, and a 1 GB disk that travels through the NBD mirror) moved back and forth between two
/// plaintext agents (127.0.0.2 and 127.0.0.3) and, as a twin, between two agents with
/// Agent:Qemu:TlsDirectory set (127.0.0.4 and 127.0.0.5, certificates from a CA of the run's
/// own). Each round moves each twin one hop, in alternating order, timed from PrepareMigration
/// on the destination to the source reporting completion; both guests run all along, so load
/// hits both sides alike. Before the runs, a migration to the TLS pair whose destination expects
/// another node must fail: proof that the TLS side really checks certificates.
/// </summary>
internal static class MigrateTlsBenchmark
{
    private const int Rounds = 15;
    private const int FillMb = 160;
    private const string Image = "linux-busy";
    private static readonly TimeSpan Boot = TimeSpan.FromMinutes(3);

    public static async Task RunAsync(CancellationToken cancellationToken)
    {
        var root = Workspace.Create();
        try
        {
            var (kernel, initrd) = await Cloud.Agent.Qemu.Tests.Support.LinuxGuest.EnsureAsync();
            string[] addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];
            foreach (var address in addresses)
            {
                // Put in each node's image store by hand, as an operator seeds one.
                await using var store = new QemuHypervisor(new QemuOptions { DataDirectory = Path.Combine(root, address), Accelerator = "tcg" });
                await store.Images.ImportKernelAsync(Image, kernel, initrd, $"{Cloud.Agent.Qemu.Tests.Support.LinuxGuest.Append} cloud.fill_mb={FillMb}", cancellationToken);
            }
            var tlsFolders = IssueQemuCertificates(Path.Combine(root, "tls"), addresses[2..]);
            await using var plain1 = await AgentProcess.StartAsync(addresses[0], Path.Combine(root, addresses[0]), cancellationToken);
            await using var plain2 = await AgentProcess.StartAsync(addresses[1], Path.Combine(root, addresses[1]), cancellationToken);
            await using var tls1 = await AgentProcess.StartAsync(addresses[2], Path.Combine(root, addresses[2]), tlsFolders[0], cancellationToken);
            await using var tls2 = await AgentProcess.StartAsync(addresses[3], Path.Combine(root, addresses[3]), tlsFolders[1], cancellationToken);

            var plain = new Twin("mig-plain", [(plain1, addresses[0]), (plain2, addresses[1])]);
            var tls = new Twin("mig-tls", [(tls1, addresses[2]), (tls2, addresses[3])]);
            await plain.CreateAsync(cancellationToken);
            await tls.CreateAsync(cancellationToken);
            await RequireAuthzAsync(tls, cancellationToken);

            for (var round = -1; round < Rounds; round++)
            {
                // Round -1 warms both pairs up (first hop of each guest) and is not counted.
                var first = round % 2 == 0 ? plain : tls;
                var second = first == plain ? tls : plain;
                await first.HopAsync(counted: round >= 0, cancellationToken);
                await second.HopAsync(counted: round >= 0, cancellationToken);
            }

            foreach (var (name, twin) in new[] { ("plain", plain), ("tls", tls) })
            {
                foreach (var p in new[] { 50, 90, 100 })
                {
                    BenchmarkRunner.Report($"migrate_{name}_p{p}", BenchmarkRunner.Percentile(twin.TotalMs, p), "ms");
                }
                BenchmarkRunner.Report($"migrate_{name}_prepare_median", BenchmarkRunner.Median(twin.PrepareMs), "ms");
                BenchmarkRunner.Report($"migrate_{name}_qemu_stream_median", BenchmarkRunner.Median(twin.StreamMs), "ms");
            }
            BenchmarkRunner.Report("migrate_tls_over_plain_ratio_of_medians", BenchmarkRunner.Median(tls.TotalMs) / BenchmarkRunner.Median(plain.TotalMs), "x");
            var ratios = tls.TotalMs.Zip(plain.TotalMs, (t, p) => t / p).ToList();
            BenchmarkRunner.Report("migrate_tls_over_plain_ratio_p50", BenchmarkRunner.Percentile(ratios, 50), "x");
            BenchmarkRunner.Report("migrate_tls_over_plain_ratio_p90", BenchmarkRunner.Percentile(ratios, 90), "x");
            BenchmarkRunner.Report("migrate_runs_per_side", ratios.Count, "runs");
            BenchmarkRunner.Report("host_load_average_1min_at_end", double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture), "");
        }
        finally
        {
            Workspace.Delete(root);
        }
    }

    /// <summary>A CA of the run's own and, per address, a node TLS folder with its QEMU certificate (named as AgentProcess names the node).</summary>
    private static List<string> IssueQemuCertificates(string root, IEnumerable<string> addresses)
    {
        using var ca = CertificateAuthority.Create("bench-cloud", DateTimeOffset.UtcNow, TimeSpan.FromDays(1));
        var folders = new List<string>();
        foreach (var address in addresses)
        {
            var node = AgentProcess.NodeNameFor(address);
            var folder = Path.Combine(root, node);
            Directory.CreateDirectory(folder);
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var publicKey = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=request", key, HashAlgorithmName.SHA256).PublicKey;
            using var certificate = ca.Issue(publicKey, CloudIdentity.QemuSubject(node), CloudIdentity.QemuUri(node), [], [IPAddress.Parse(address)], DateTimeOffset.UtcNow, TimeSpan.FromDays(1));
            File.WriteAllText(Path.Combine(folder, CloudIdentity.CaFile), ca.CertificatePem());
            File.WriteAllText(Path.Combine(folder, CloudIdentity.QemuCertificateFile), certificate.ExportCertificatePem());
            File.WriteAllText(Path.Combine(folder, CloudIdentity.QemuKeyFile), key.ExportPkcs8PrivateKeyPem());
            folders.Add(folder);
        }
        return folders;
    }

    /// <summary>A destination that expects another source node must refuse the TLS pair's stream; the guest stays where it is.</summary>
    private static async Task RequireAuthzAsync(Twin twin, CancellationToken cancellationToken)
    {
        var (source, _) = twin.Nodes[twin.At];
        var (destination, _) = twin.Nodes[1 - twin.At];
        var spec = Twin.Spec(twin.VmId);
        var prepared = await destination.Client.PrepareMigrationAsync(new PrepareMigrationRequest { Spec = spec, MigrationId = "refused", PeerNode = "bench-nobody" }, AgentProcess.Deadline(cancellationToken));
        try
        {
            await source.MigrateAsync(new MigrateRequest { VmId = twin.VmId, MigrationId = "refused", MigrationUri = prepared.MigrationUri, DiskUri = prepared.DiskUri, PeerNode = twin.NodeName(1 - twin.At) }, cancellationToken);
            throw new InvalidOperationException("A TLS destination that expects another node admitted the stream: the TLS pair does not check certificates.");
        }
        catch (InvalidOperationException ex) when (ex.Message.Contains("ended Failed", StringComparison.Ordinal))
        {
            // As it should.
        }
        await destination.Client.AbortMigrationAsync(new AbortMigrationRequest { VmId = twin.VmId, MigrationId = "refused" }, AgentProcess.Deadline(cancellationToken));
    }

    /// <summary>One guest and the two agents it moves between.</summary>
    private sealed class Twin(string vmId, (AgentProcess Agent, string Address)[] nodes)
    {
        private int _hops;

        public string VmId { get; } = vmId;

        public (AgentProcess Agent, string Address)[] Nodes { get; } = nodes;

        /// <summary>Index of the node the guest is on.</summary>
        public int At { get; private set; }

        public List<double> TotalMs { get; } = [];

        public List<double> StreamMs { get; } = [];

        public List<double> PrepareMs { get; } = [];

        public string NodeName(int index) => AgentProcess.NodeNameFor(Nodes[index].Address);

        public static VmSpec Spec(string vmId) => new() { VmId = vmId, Name = vmId, Image = Image, Start = true, Shape = new VmShape { Vcpus = 1, MemoryMb = 256, DiskGb = 1 } };

        public async Task CreateAsync(CancellationToken cancellationToken)
        {
            var vm = await Nodes[0].Agent.Client.CreateVmAsync(new CreateVmRequest { Spec = Spec(VmId) }, AgentProcess.Deadline(cancellationToken));
            if (vm.State != VmState.Running)
            {
                throw new InvalidOperationException($"VM {VmId} is {vm.State}: {vm.Error}");
            }
            // The guest prints its first tick once its RAM is filled.
            var serialLog = Path.Combine(Nodes[0].Agent.VmDirectory(VmId), "serial.log");
            var deadline = DateTime.UtcNow + Boot;
            while (!File.Exists(serialLog) || !(await File.ReadAllTextAsync(serialLog, cancellationToken)).Contains("tick=1 ", StringComparison.Ordinal))
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"The guest printed no tick within {Boot.TotalMinutes} minutes ({serialLog}).");
                }
                await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
            }
        }

        /// <summary>Moves the guest to the other node, as the controller would, and records the time.</summary>
        public async Task HopAsync(bool counted, CancellationToken cancellationToken)
        {
            var to = 1 - At;
            var (source, _) = Nodes[At];
            var (destination, _) = Nodes[to];
            var migrationId = $"hop-{++_hops}";
            var timer = Stopwatch.StartNew();
            var prepared = await destination.Client.PrepareMigrationAsync(
                new PrepareMigrationRequest { Spec = Spec(VmId), MigrationId = migrationId, PeerNode = NodeName(At) }, AgentProcess.Deadline(cancellationToken));
            var prepare = timer.Elapsed.TotalMilliseconds;
            var last = await source.MigrateAsync(new MigrateRequest
            {
                VmId = VmId,
                MigrationId = migrationId,
                MigrationUri = prepared.MigrationUri,
                DiskUri = prepared.DiskUri,
                PeerNode = NodeName(to),
            }, cancellationToken);
            var elapsed = timer.Elapsed.TotalMilliseconds;
            At = to;
            // The next hop starts from a guest that runs again on its new node.
            var deadline = DateTime.UtcNow + Boot;
            while ((await destination.Client.ListVmsAsync(new ListVmsRequest(), AgentProcess.Deadline(cancellationToken))).Vms.Single(v => v.VmId == VmId).State != VmState.Running)
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"{VmId} did not run on its destination after {migrationId}.");
                }
                await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken);
            }
            if (counted)
            {
                TotalMs.Add(elapsed);
                StreamMs.Add(last.TotalTimeMs);
                PrepareMs.Add(prepare);
            }
        }
    }
}
