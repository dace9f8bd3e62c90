namespace Cloud.Controller.Scheduling;

/// <summary>How the scheduler weighs nodes and how often it refreshes its view. Section "Scheduler".</summary>
public sealed class SchedulerOptions
{
    public const string SectionName = "Scheduler";

    /// <summary>"spread" (most free capacity first, the default) or "pack" (fullest node that fits).</summary>
    public string Policy { get; set; } = "spread";

    /// <summary>How old the in-memory view of capacity may grow before a full reload. Default 2 s.</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Claims retried after generation conflicts before the request fails. Default 8.</summary>
    public int MaxClaimAttempts { get; set; } = 8;
}
