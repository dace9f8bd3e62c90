using System.Collections.Concurrent;

namespace Cloud.Agent.Hypervisor.Fake;

/// <summary>
/// How a fake guest travels: the destination, when it prepares, registers under its migration
/// URI what to do on arrival; the source, once its simulated transfer is done, hands the
/// guest's run state to whoever awaits that URI. In one process only, as the simulator and the
/// tests host their fake agents; a source whose destination is not here fails the migration
/// and keeps its guest, as a real source does when the destination cannot be reached.
/// </summary>
internal static class FakeMigrationFabric
{
    private static readonly ConcurrentDictionary<string, Func<Cloud.Contracts.Agent.V1.VmState, bool>> Awaiting = new(StringComparer.Ordinal);

    /// <summary>Registers the destination's arrival: it answers false when it no longer awaits the guest (aborted meanwhile).</summary>
    public static void Await(string migrationUri, Func<Cloud.Contracts.Agent.V1.VmState, bool> arrive) => Awaiting[migrationUri] = arrive;

    public static void Forget(string migrationUri) => Awaiting.TryRemove(migrationUri, out _);

    /// <summary>True when a destination awaited the guest and took it in <paramref name="state"/>.</summary>
    public static bool HandOver(string migrationUri, Cloud.Contracts.Agent.V1.VmState state)
        => Awaiting.TryRemove(migrationUri, out var arrive) && arrive(state);
}
