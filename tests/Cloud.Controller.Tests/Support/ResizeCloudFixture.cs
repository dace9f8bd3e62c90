using System.Net;

namespace Cloud.Controller.Tests.Support;

/// <summary>
/// Two QEMU nodes of 2 GiB of memory each, small enough that a few firmware-only guests fill
/// one and a resize must move. Its own collections, so that no other test's VMs take the room.
/// </summary>
public sealed class ResizeCloudFixture : QemuCloudFixture
{
    public const long NodeMemoryMb = 2048;

    protected override Dictionary<string, string?> AgentBackendSettings(int n, IPAddress address)
    {
        var settings = base.AgentBackendSettings(n, address);
        settings["Agent:Qemu:TotalMemoryMb"] = NodeMemoryMb.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return settings;
    }
}

[CollectionDefinition(Name)]
public sealed class ResizeCloudCollection : ICollectionFixture<ResizeCloudFixture>
{
    public const string Name = "resize-cloud";
}

/// <summary>The same cloud for a test that stops one of its agents: no other test shares it.</summary>
[CollectionDefinition(Name)]
public sealed class BrokenResizeCloudCollection : ICollectionFixture<ResizeCloudFixture>
{
    public const string Name = "resize-cloud-broken";
}
