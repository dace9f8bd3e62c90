using Cloud.Controller.Data.Tests.Support;

namespace Cloud.Controller.Data.Tests;

public sealed class NodeRegistrationTests : IAsyncLifetime
{
    private static readonly Dictionary<string, ResourceInventory> Small = new()
    {
        ["VCPU"] = new(4, 0, 4.0, 1, 4, 1),
        ["MEMORY_MB"] = new(8192, 512, 1.0, 1, 8192, 1),
    };

    private LedgerDatabase _db = null!;

    public async Task InitializeAsync() => _db = await LedgerDatabase.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    [Fact]
    public async Task UpsertNode_NewName_RegistersAnUpNodeWithItsInventory()
    {
        var id = await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("n1", Small, zone: "az9"), CancellationToken.None);

        var node = await _db.Ledger.LoadNodeAsync(id, CancellationToken.None);
        Assert.NotNull(node);
        Assert.Equal(("n1", "UP", true, "az9", 0L), (node.Name, node.State, node.Schedulable, node.AvailabilityZone, node.Generation));
        Assert.Equal(["SSD"], node.Traits);
        Assert.Equal(Small.OrderBy(kv => kv.Key), node.Inventories.OrderBy(kv => kv.Key));
        Assert.Equal(16, node.Free("VCPU"));
        Assert.Equal(7680, node.Free("MEMORY_MB"));
        Assert.Equal(["UP | " + _db.Time.GetUtcNow().UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture)],
            await _db.RowsAsync("SELECT state, to_char(last_heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US0\"Z\"') FROM nodes WHERE id = $1", id));
    }

    [Fact]
    public async Task UpsertNode_SameInventoryAgain_KeepsTheIdAndTheGeneration()
    {
        var id = await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("n1", Small), CancellationToken.None);

        var again = await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("n1", new Dictionary<string, ResourceInventory>(Small)), CancellationToken.None);

        Assert.Equal(id, again);
        Assert.Equal(0, await _db.GenerationAsync(id));
        Assert.Equal(1, await _db.ScalarAsync<long>("SELECT count(*) FROM nodes"));
    }

    [Fact]
    public async Task UpsertNode_ChangedInventory_ReplacesItAndBumpsTheGeneration()
    {
        var id = await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("n1", Small), CancellationToken.None);
        var changed = new Dictionary<string, ResourceInventory>
        {
            ["VCPU"] = new(8, 0, 4.0, 1, 8, 1),
            ["DISK_GB"] = new(100, 0, 1.0, 1, 100, 1),
        };

        await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("n1", changed), CancellationToken.None);

        var node = await _db.Ledger.LoadNodeAsync(id, CancellationToken.None);
        Assert.Equal(1, node!.Generation);
        Assert.Equal(changed.OrderBy(kv => kv.Key), node.Inventories.OrderBy(kv => kv.Key));
    }

    [Fact]
    public async Task UpsertNode_DrainedNodeRegistersAgain_StaysUnschedulable()
    {
        var id = await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("n1", Small), CancellationToken.None);
        await _db.ExecuteAsync("UPDATE nodes SET schedulable = false, state = 'DOWN' WHERE id = $1", id);

        await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("n1", Small) with { Address = "http://127.0.0.9:7070" }, CancellationToken.None);

        Assert.Equal(["UP | False | http://127.0.0.9:7070"], await _db.RowsAsync("SELECT state, schedulable, address FROM nodes WHERE id = $1", id));
    }

    [Fact]
    public async Task UpsertNode_InventoryShrinksBelowUsage_IsAcceptedAndTheNodeTakesNothingMore()
    {
        var id = await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("n1", Small), CancellationToken.None);
        Assert.True((await _db.Ledger.TryClaimAsync(
            [LedgerDatabase.ClaimFor(Guid.NewGuid(), id, 0, 4, 1024), LedgerDatabase.ClaimFor(Guid.NewGuid(), id, 0, 4, 1024)], null, CancellationToken.None)).Succeeded);
        var shrunk = new Dictionary<string, ResourceInventory>(Small) { ["VCPU"] = new(1, 0, 4.0, 1, 1, 1) };

        await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("n1", shrunk), CancellationToken.None);

        var node = await _db.Ledger.LoadNodeAsync(id, CancellationToken.None);
        Assert.Equal(-4, node!.Free("VCPU"));
        var refused = await _db.Ledger.TryClaimAsync([LedgerDatabase.ClaimFor(Guid.NewGuid(), id, node.Generation, 1, 512)], null, CancellationToken.None);
        Assert.Equal(ClaimConflictReason.InsufficientCapacity, Assert.Single(refused.Conflicts).Reason);
    }

    [Theory]
    [InlineData("", "must have 1 to 63 characters")]
    [InlineData("vcpu", "resource class 'vcpu'")]
    [InlineData("reserved", "reserved at most total")]
    [InlineData("ratio", "allocation ratio must be a positive number")]
    [InlineData("units", "max_unit >= min_unit")]
    public async Task UpsertNode_InvalidRegistration_IsRefusedWithAClearError(string problem, string message)
    {
        var inventories = new Dictionary<string, ResourceInventory>(Small);
        var name = "n1";
        switch (problem)
        {
            case "":
                name = "";
                break;
            case "vcpu":
                inventories["vcpu"] = new(1, 0, 1, 1, 1, 1);
                break;
            case "reserved":
                inventories["VCPU"] = new(4, 5, 1, 1, 4, 1);
                break;
            case "ratio":
                inventories["VCPU"] = new(4, 0, double.NaN, 1, 4, 1);
                break;
            case "units":
                inventories["VCPU"] = new(4, 0, 1, 2, 1, 1);
                break;
        }

        var error = await Assert.ThrowsAsync<ArgumentException>(() => _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration(name, inventories), CancellationToken.None));

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Equal(0, await _db.ScalarAsync<long>("SELECT count(*) FROM nodes"));
    }

    [Fact]
    public async Task TouchHeartbeat_UnknownNode_IsNotKnown()
        => Assert.False((await _db.Ledger.TouchHeartbeatAsync(Guid.NewGuid(), CancellationToken.None)).Known);

    [Fact]
    public async Task TouchHeartbeat_ReturnsWhenThePreviousHeartbeatArrived()
    {
        var node = await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("steady", Small), CancellationToken.None);
        var registeredAt = _db.Time.GetUtcNow();
        _db.Time.Advance(TimeSpan.FromSeconds(5));

        var first = await _db.Ledger.TouchHeartbeatAsync(node, CancellationToken.None);
        _db.Time.Advance(TimeSpan.FromSeconds(5));
        var second = await _db.Ledger.TouchHeartbeatAsync(node, CancellationToken.None);

        Assert.Equal(registeredAt, first.PreviousHeartbeatAt!.Value, TimeSpan.FromMilliseconds(1));
        Assert.Equal(registeredAt.AddSeconds(5), second.PreviousHeartbeatAt!.Value, TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public async Task MarkStaleNodesDown_OnlySilentNodesGoDown_AndAHeartbeatBringsThemBack()
    {
        var quiet = await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("quiet", Small), CancellationToken.None);
        var chatty = await _db.Ledger.UpsertNodeAsync(LedgerDatabase.Registration("chatty", Small), CancellationToken.None);
        _db.Time.Advance(TimeSpan.FromSeconds(20));
        Assert.True((await _db.Ledger.TouchHeartbeatAsync(chatty, CancellationToken.None)).Known);
        _db.Time.Advance(TimeSpan.FromSeconds(15));

        var down = await _db.Ledger.MarkStaleNodesDownAsync(TimeSpan.FromSeconds(30), CancellationToken.None);

        Assert.Equal(1, down);
        Assert.Equal(["chatty | UP | 0", "quiet | DOWN | 0"], await _db.RowsAsync("SELECT name, state, generation FROM nodes ORDER BY name"));
        Assert.Equal(0, await _db.Ledger.MarkStaleNodesDownAsync(TimeSpan.FromSeconds(30), CancellationToken.None));

        Assert.True((await _db.Ledger.TouchHeartbeatAsync(quiet, CancellationToken.None)).Known);
        Assert.Equal("UP", (await _db.Ledger.LoadNodeAsync(quiet, CancellationToken.None))!.State);
    }
}
