namespace Cloud.Controller.Tests.Support;

/// <summary>
/// A cloud whose per-token rate limit a test can go over on purpose, so that the audit trail's
/// record of a 429 is tested. Its own collection, so that no other test's calls count against
/// the limit; with a burst large enough for the fixture's own setup.
/// </summary>
public sealed class AuditCloudFixture : CloudFixture
{
    public const int PerSecond = 2;
    public const int Burst = 20;

    protected override Dictionary<string, string?> ControllerSettings() => new()
    {
        ["RateLimits:PerTokenRequestsPerSecond"] = PerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RateLimits:PerTokenBurst"] = Burst.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}

[CollectionDefinition(Name)]
public sealed class AuditCloudCollection : ICollectionFixture<AuditCloudFixture>
{
    public const string Name = "audit-cloud";
}
