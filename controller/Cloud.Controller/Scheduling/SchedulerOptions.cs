namespace Cloud.Controller.Scheduling;

/// <summary>How the scheduler weighs nodes and how often it refreshes its view. Section "Scheduler".</summary>
public sealed class SchedulerOptions
{
    public const string SectionName = "Scheduler";

    /// <summary>"spread" (most free capacity first, the default) or "pack" (fullest node that fits).</summary>
    public string Policy { get; set; } = "spread";

    /// <summary>
    /// How old the in-memory view of capacity may grow before it is checked against the
    /// database: every node's generation, state and schedulable flag are read, and the nodes that
    /// differ (other replicas' claims and releases, nodes gone down, registered or drained) are
    /// reloaded. Default 2 s.
    /// </summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How old the view may grow before it is reloaded whole, a safety net under the checks
    /// (which compare generations, so they miss only a change made without bumping one). A full
    /// reload of 10,000 nodes costs a third of a second of the database's time. Default 10 minutes.
    /// </summary>
    public TimeSpan FullReloadInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Claims retried after generation conflicts before the request fails. Default 8.</summary>
    public int MaxClaimAttempts { get; set; } = 8;

    /// <summary>
    /// Stop a pass once this many nodes passed the filters, and weigh only those; 0 (the
    /// default) weighs every node. A few hundred keeps a pass short on a very large cloud at
    /// the cost of a slightly less optimal choice; packing wants 0.
    /// </summary>
    public int MaxFeasibleNodes { get; set; }

    /// <summary>Weigher multipliers by weigher name (resources, fragmentation, server-group); a weigher not named keeps its default.</summary>
    public Dictionary<string, double> Weights { get; set; } = [];

    /// <summary>Largest batch placed in one pass. Default 1,000.</summary>
    public int MaxBatchSize { get; set; } = 1000;

    /// <summary>
    /// Most one-VM requests claimed in one transaction by the claim loop (group commit). The loop
    /// takes what is queued, never waits for more. 0 turns group commit off: every request then
    /// claims in a transaction of its own. Default 128.
    /// </summary>
    public int GroupCommitMaxSize { get; set; } = 128;

    /// <summary>
    /// Groups in flight at once on this replica: while one waits for its commit, the next is
    /// decided and claimed. Concurrent groups may pick the same node; the claim sorts that out
    /// under the node's lock. 1 to 16; default 2.
    /// </summary>
    public int ClaimLoops { get; set; } = 2;

    /// <summary>How long placement decisions are kept; older ones are deleted every hour. Default 7 days.</summary>
    public TimeSpan DecisionRetention { get; set; } = TimeSpan.FromDays(7);
}
