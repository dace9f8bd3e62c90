using System.Collections.Concurrent;
using Cloud.Controller.Data.Tests.Support;
using Npgsql;

namespace Cloud.Controller.Data.Tests;

/// <summary>
/// Claimers racing for a few small nodes the way controller replicas do: each decides on its own
/// view, claims optimistically, and on a conflict reloads the nodes it lost and tries again.
/// </summary>
public sealed class ConcurrencyTests : IAsyncLifetime
{
    private static readonly (int Vcpus, long MemoryMb)[] Sizes = [(1, 256), (2, 512), (1, 1024), (3, 768)];

    private LedgerDatabase _db = null!;

    public async Task InitializeAsync() => _db = await LedgerDatabase.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    [Fact]
    public async Task TryClaim_EightClaimersRacingUntilTheNodesAreFull_NeverOvercommit()
    {
        for (var i = 0; i < 4; i++)
        {
            await _db.AddNodeAsync($"n{i}", vcpus: 16, memoryMb: 8192, cpuRatio: 1.0);
        }
        // Every claimer starts from the same view, so the first round is a real race: four nodes
        // at generation 0 can take at most four of the eight first claims.
        var initial = (await _db.Ledger.LoadAsync(CancellationToken.None)).ToDictionary(n => n.NodeId);
        var conflicts = 0;
        var placed = new ConcurrentBag<Guid>();

        await Task.WhenAll(Enumerable.Range(0, 8).Select(seed => Task.Run(async () =>
        {
            // A claimer may lose every race (a batch over three nodes loses to any single
            // claim on one of them); the ledger promises safety, not fairness.
            var lost = await ClaimUntilFullAsync(seed, batchSize: seed % 2 == 0 ? 1 : 3, new Dictionary<Guid, NodeCapacity>(initial), placed);
            Interlocked.Add(ref conflicts, lost);
        })));

        Assert.True(conflicts >= 4, $"only {conflicts} conflicts: the claimers did not race");
        Assert.NotEmpty(placed);
        Assert.Empty(await LedgerInvariants.CheckAsync(_db.DataSource, CancellationToken.None));
        Assert.Equal(0, await _db.ScalarAsync<long>("""
            SELECT count(*)
              FROM (SELECT node_id, resource_class, sum(used) AS used FROM allocations GROUP BY node_id, resource_class) AS a
              JOIN inventories AS i USING (node_id, resource_class)
             WHERE a.used > floor((i.total - i.reserved) * i.allocation_ratio)
            """));
        // Nothing lost either: the VMs that hold a node are exactly what the ledger allocates.
        Assert.Equal(
            await _db.RowsAsync("SELECT node_id, sum(vcpus), sum(memory_mb) FROM vms WHERE state = 'RUNNING' GROUP BY node_id ORDER BY node_id"),
            await _db.RowsAsync("""
                SELECT node_id, sum(used) FILTER (WHERE resource_class = 'VCPU'), sum(used) FILTER (WHERE resource_class = 'MEMORY_MB')
                  FROM allocations GROUP BY node_id ORDER BY node_id
                """));
        // And the race ran to the end: no node has room for even the smallest VM.
        Assert.All(await _db.Ledger.LoadAsync(CancellationToken.None),
            n => Assert.True(n.Free("VCPU") < 1 || n.Free("MEMORY_MB") < 256, $"{n.Name} still has room"));
    }

    /// <summary>
    /// Places VMs until no node fits; now and then deletes one of its own, as tenants do.
    /// Returns how many of its claims were refused.
    /// </summary>
    private async Task<int> ClaimUntilFullAsync(int seed, int batchSize, Dictionary<Guid, NodeCapacity> view, ConcurrentBag<Guid> placed)
    {
        var random = new Random(seed);
        var mine = new List<Guid>();
        var (won, lost, released) = (0, 0, 0);
        for (var round = 0; round < 10_000; round++)
        {
            var batch = Decide(view, batchSize, random);
            if (batch.Count == 0)
            {
                view = (await _db.Ledger.LoadAsync(CancellationToken.None)).ToDictionary(n => n.NodeId);
                batch = Decide(view, batchSize, random);
                if (batch.Count == 0)
                {
                    return lost;
                }
            }

            await using var connection = await _db.DataSource.OpenConnectionAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            foreach (var (vm, _, size) in batch)
            {
                await _db.InsertVmAsync(vm, null, "PENDING", size.Vcpus, size.MemoryMb, transaction);
            }
            var claims = batch.Select(b => LedgerDatabase.ClaimFor(b.Vm, b.Node.NodeId, b.Node.Generation, b.Size.Vcpus, b.Size.MemoryMb)).ToList();
            var result = await _db.Ledger.TryClaimAsync(claims, transaction, CancellationToken.None);
            if (!result.Succeeded)
            {
                await transaction.RollbackAsync();
                lost++;
                foreach (var nodeId in result.ConflictingNodeIds)
                {
                    view[nodeId] = (await _db.Ledger.LoadNodeAsync(nodeId, CancellationToken.None))!;
                }
                continue;
            }
            foreach (var (vm, node, _) in batch)
            {
                await using var command = new NpgsqlCommand("UPDATE vms SET node_id = $1, state = 'RUNNING' WHERE id = $2", connection, transaction);
                command.Parameters.Add(new() { Value = node.NodeId });
                command.Parameters.Add(new() { Value = vm });
                await command.ExecuteNonQueryAsync();
            }
            await transaction.CommitAsync();
            won++;
            foreach (var (vm, node, size) in batch)
            {
                mine.Add(vm);
                placed.Add(vm);
                view[node.NodeId] = Apply(view[node.NodeId], size.Vcpus, size.MemoryMb);
            }

            if (won % 4 == 0 && released < 3)
            {
                released++;
                await DeleteAsync(mine[random.Next(mine.Count)]);
            }
        }
        throw new InvalidOperationException($"claimer {seed} did not finish");
    }

    /// <summary>Picks nodes for up to <paramref name="count"/> VMs in the view; generations as seen.</summary>
    private static List<(Guid Vm, NodeCapacity Node, (int Vcpus, long MemoryMb) Size)> Decide(
        Dictionary<Guid, NodeCapacity> view, int count, Random random)
    {
        var batch = new List<(Guid, NodeCapacity, (int, long))>();
        var planned = new Dictionary<Guid, (long Vcpus, long MemoryMb)>();
        for (var i = 0; i < count; i++)
        {
            var size = Sizes[random.Next(Sizes.Length)];
            var fits = view.Values
                .Where(n => n.Free("VCPU") - planned.GetValueOrDefault(n.NodeId).Vcpus >= size.Vcpus
                    && n.Free("MEMORY_MB") - planned.GetValueOrDefault(n.NodeId).MemoryMb >= size.MemoryMb)
                .ToList();
            if (fits.Count == 0)
            {
                // The smallest size may still fit somewhere.
                size = Sizes[0];
                fits = [.. view.Values.Where(n => n.Free("VCPU") - planned.GetValueOrDefault(n.NodeId).Vcpus >= 1
                    && n.Free("MEMORY_MB") - planned.GetValueOrDefault(n.NodeId).MemoryMb >= 256)];
                if (fits.Count == 0)
                {
                    break;
                }
            }
            var node = fits[random.Next(fits.Count)];
            var sum = planned.GetValueOrDefault(node.NodeId);
            planned[node.NodeId] = (sum.Vcpus + size.Vcpus, sum.MemoryMb + size.MemoryMb);
            batch.Add((Guid.NewGuid(), node, size));
        }
        return batch;
    }

    private static NodeCapacity Apply(NodeCapacity node, long vcpus, long memoryMb)
    {
        var used = new Dictionary<string, long>(node.Used);
        used["VCPU"] = used.GetValueOrDefault("VCPU") + vcpus;
        used["MEMORY_MB"] = used.GetValueOrDefault("MEMORY_MB") + memoryMb;
        return node with { Used = used, Generation = node.Generation + 1 };
    }

    /// <summary>Deletes a VM as the controller does: release and the VM's final state in one transaction.</summary>
    private async Task DeleteAsync(Guid vm)
    {
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await _db.Ledger.ReleaseAsync(vm, transaction, CancellationToken.None);
        await using (var command = new NpgsqlCommand("UPDATE vms SET node_id = NULL, state = 'DELETED' WHERE id = $1", connection, transaction))
        {
            command.Parameters.Add(new() { Value = vm });
            await command.ExecuteNonQueryAsync();
        }
        await transaction.CommitAsync();
    }
}
