namespace Cloud.Controller.Data;

/// <summary>Event ids of the data layer's log messages, in one place so that they never collide.</summary>
internal static class DataEventIds
{
    public const int ClaimRefused = 5001;
    public const int InventoryBelowUsage = 5002;

    public const int EmbeddedInitializing = 5101;
    public const int EmbeddedStarted = 5102;
    public const int EmbeddedStopped = 5103;
    public const int EmbeddedStaleServer = 5104;
    public const int EmbeddedPortTaken = 5105;
}
