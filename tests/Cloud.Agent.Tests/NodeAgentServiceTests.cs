using Cloud.Agent.Hypervisor.Fake;
using Cloud.Contracts.Agent.V1;
using Grpc.Core;
using Google.Protobuf;
using Microsoft.Extensions.Options;

namespace Cloud.Agent.Tests;

public sealed class NodeAgentServiceTests(AgentServerFixture agent) : IClassFixture<AgentServerFixture>
{
    private static CallOptions Deadline => new(deadline: DateTime.UtcNow.AddSeconds(10));

    private static VmSpec Spec(string id, int vcpus = 1) => new()
    {
        VmId = id,
        Name = "vm-" + id,
        Shape = new VmShape { Vcpus = vcpus, MemoryMb = 256, DiskGb = 1 },
        Start = true,
    };

    [Fact]
    public async Task GetNodeInfo_reports_the_fake_inventory()
    {
        var info = await agent.Client.GetNodeInfoAsync(new GetNodeInfoRequest(), Deadline);
        Assert.Equal("fake", info.Hypervisor);
        Assert.Equal(Accelerator.Fake, info.Accelerator);
        Assert.Equal(8, info.Inventories.Single(i => i.ResourceClass == "VCPU").Total);
    }

    [Fact]
    public async Task CreateVm_starts_the_guest_and_a_retry_returns_the_same_vm()
    {
        var first = await agent.Client.CreateVmAsync(new CreateVmRequest { Spec = Spec("idem1") }, Deadline);
        var again = await agent.Client.CreateVmAsync(new CreateVmRequest { Spec = Spec("idem1") }, Deadline);

        Assert.Equal(VmState.Running, first.State);
        Assert.Equal(first.VmId, again.VmId);
        var listed = await agent.Client.ListVmsAsync(new ListVmsRequest(), Deadline);
        Assert.Single(listed.Vms, v => v.VmId == "idem1");
    }

    [Fact]
    public async Task CreateVm_with_the_same_id_and_another_shape_is_already_exists()
    {
        await agent.Client.CreateVmAsync(new CreateVmRequest { Spec = Spec("clash") }, Deadline);
        var error = await Assert.ThrowsAsync<RpcException>(() => agent.Client.CreateVmAsync(new CreateVmRequest { Spec = Spec("clash", vcpus: 2) }, Deadline).ResponseAsync);
        Assert.Equal(StatusCode.AlreadyExists, error.StatusCode);
        Assert.Equal("ALREADY_EXISTS", error.GetRpcStatus()?.GetDetail<Google.Rpc.ErrorInfo>()?.Reason);
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("")]
    [InlineData("has space")]
    public async Task Ids_that_could_name_a_path_are_invalid(string id)
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => agent.Client.StartVmAsync(new StartVmRequest { VmId = id }, Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    [Fact]
    public async Task A_negative_shape_is_invalid_and_creates_nothing()
    {
        var spec = Spec("negative");
        spec.Shape.MemoryMb = -256;
        var error = await Assert.ThrowsAsync<RpcException>(() => agent.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("memory_mb", error.Status.Detail, StringComparison.Ordinal);
        var listed = await agent.Client.ListVmsAsync(new ListVmsRequest(), Deadline);
        Assert.DoesNotContain(listed.Vms, v => v.VmId == "negative");
    }

    [Fact]
    public async Task Verbs_on_an_unknown_vm_are_not_found_and_delete_is_idempotent()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => agent.Client.StartVmAsync(new StartVmRequest { VmId = "ghost" }, Deadline).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        // The backend's failure arrives as google.rpc.Status: the agent method, and the reason to switch on.
        Assert.StartsWith("StartVm: ", error.Status.Detail, StringComparison.Ordinal);
        var rich = error.GetRpcStatus();
        Assert.Equal((int)StatusCode.NotFound, rich?.Code);
        Assert.Equal("NOT_FOUND", rich?.GetDetail<Google.Rpc.ErrorInfo>()?.Reason);
        Assert.Equal("cloud", rich?.GetDetail<Google.Rpc.ErrorInfo>()?.Domain);
        await agent.Client.DeleteVmAsync(new VmRef { VmId = "ghost" }, Deadline);
    }

    [Fact]
    public async Task Stop_then_start_changes_state_and_watch_streams_the_events()
    {
        await agent.Client.CreateVmAsync(new CreateVmRequest { Spec = Spec("watched") }, Deadline);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var watch = agent.Client.WatchEvents(new WatchEventsRequest(), new CallOptions(cancellationToken: cts.Token));
        // The server subscribes when the call arrives; wait for the response headers so that
        // the stop below is not published before the watch exists.
        await watch.ResponseHeadersAsync;

        var stopped = await agent.Client.StopVmAsync(new StopVmRequest { VmId = "watched", Force = true }, Deadline);
        Assert.Equal(VmState.Stopped, stopped.State);
        Assert.True(await watch.ResponseStream.MoveNext(cts.Token));
        Assert.Equal("watched", watch.ResponseStream.Current.VmId);
        Assert.Equal(VmState.Stopped, watch.ResponseStream.Current.State);

        var started = await agent.Client.StartVmAsync(new StartVmRequest { VmId = "watched" }, Deadline);
        Assert.Equal(VmState.Running, started.State);
    }

    [Fact]
    public async Task A_stopped_vm_starts_paused_and_migrates_so_and_a_running_one_cannot_start_paused()
    {
        var spec = Spec("dormant");
        spec.Start = false;
        await agent.Client.CreateVmAsync(new CreateVmRequest { Spec = spec }, Deadline);

        var paused = await agent.Client.StartVmAsync(new StartVmRequest { VmId = "dormant", Paused = true }, Deadline);
        Assert.Equal(VmState.Paused, paused.State);
        Assert.Equal(VmState.Paused, (await agent.Client.StartVmAsync(new StartVmRequest { VmId = "dormant", Paused = true }, Deadline)).State);
        Assert.Equal(VmState.Running, (await agent.Client.StartVmAsync(new StartVmRequest { VmId = "dormant" }, Deadline)).State);
        var refused = await Assert.ThrowsAsync<RpcException>(() => agent.Client.StartVmAsync(new StartVmRequest { VmId = "dormant", Paused = true }, Deadline).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Contains("running", refused.Status.Detail, StringComparison.Ordinal);

        await agent.Client.StopVmAsync(new StopVmRequest { VmId = "dormant", Force = true }, Deadline);
        await agent.Client.StartVmAsync(new StartVmRequest { VmId = "dormant", Paused = true }, Deadline);
        var destination = Destination();
        var prepared = await destination.PrepareMigrationAsync(spec, "m-dormant", null, "", CancellationToken.None);
        var phases = await MigrateAsync("dormant", "m-dormant", prepared.MigrationUri);

        Assert.Equal(MigrationProgress.Types.Phase.Completed, phases[^1].Phase);
        Assert.Equal(VmState.Paused, (await destination.ListVmsAsync(CancellationToken.None)).Single(v => v.VmId == "dormant").State);
    }

    [Fact]
    public void StartVmRequest_and_VmRef_read_each_other_so_either_side_may_be_older()
    {
        var fromOld = StartVmRequest.Parser.ParseFrom(new VmRef { VmId = "a1" }.ToByteArray());
        Assert.Equal("a1", fromOld.VmId);
        Assert.False(fromOld.Paused);
        Assert.Equal("a1", VmRef.Parser.ParseFrom(new StartVmRequest { VmId = "a1", Paused = true }.ToByteArray()).VmId);
    }

    [Fact]
    public async Task Migrate_streams_progress_and_the_guest_arrives_running_on_the_destination()
    {
        await agent.Client.CreateVmAsync(new CreateVmRequest { Spec = Spec("mover") }, Deadline);
        var destination = Destination();
        var prepared = await destination.PrepareMigrationAsync(Spec("mover"), "m1", null, "", CancellationToken.None);
        Assert.Equal(VmState.Incoming, (await destination.ListVmsAsync(CancellationToken.None)).Single().State);

        var phases = await MigrateAsync("mover", "m1", prepared.MigrationUri);

        Assert.Equal(MigrationProgress.Types.Phase.Completed, phases[^1].Phase);
        Assert.Contains(phases, p => p.Phase == MigrationProgress.Types.Phase.Memory);
        Assert.Equal(VmState.Running, (await destination.ListVmsAsync(CancellationToken.None)).Single(v => v.VmId == "mover").State);
        Assert.DoesNotContain((await agent.Client.ListVmsAsync(new ListVmsRequest(), Deadline)).Vms, v => v.VmId == "mover");
    }

    [Fact]
    public async Task Migrate_to_a_destination_that_awaits_nothing_fails_and_the_source_keeps_its_guest()
    {
        await agent.Client.CreateVmAsync(new CreateVmRequest { Spec = Spec("stayer") }, Deadline);
        var aborted = Destination();
        var prepared = await aborted.PrepareMigrationAsync(Spec("stayer"), "m-aborted", null, "", CancellationToken.None);
        await aborted.AbortMigrationAsync("stayer", "m-aborted", CancellationToken.None);

        foreach (var uri in new[] { "fake:nowhere:m-none", prepared.MigrationUri })
        {
            var phases = await MigrateAsync("stayer", "m-stay", uri);

            Assert.Equal(MigrationProgress.Types.Phase.Failed, phases[^1].Phase);
            Assert.Contains("No destination awaits", phases[^1].Error, StringComparison.Ordinal);
            Assert.Equal(VmState.Running, (await agent.Client.ListVmsAsync(new ListVmsRequest(), Deadline)).Vms.Single(v => v.VmId == "stayer").State);
        }
        Assert.Empty(await aborted.ListVmsAsync(CancellationToken.None));
    }

    /// <summary>A second fake node in this process, the destination of the agent's migrations.</summary>
    private static FakeHypervisor Destination()
        => new(Options.Create(new FakeHypervisorOptions()), TimeProvider.System, "destination-" + Guid.NewGuid().ToString("N")[..6]);

    private async Task<List<MigrationProgress>> MigrateAsync(string vmId, string migrationId, string uri)
    {
        using var call = agent.Client.Migrate(new MigrateRequest { VmId = vmId, MigrationId = migrationId, MigrationUri = uri }, Deadline);
        var progress = new List<MigrationProgress>();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            progress.Add(call.ResponseStream.Current);
        }
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        return progress;
    }
}
