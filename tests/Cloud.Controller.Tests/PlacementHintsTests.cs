using Cloud.Controller.Scheduling;

namespace Cloud.Controller.Tests;

/// <summary>Placement hints read from VM labels; no I/O.</summary>
public sealed class PlacementHintsTests
{
    [Fact]
    public void Every_hint_is_read()
    {
        var group = Guid.NewGuid();
        var labels = new Dictionary<string, string>
        {
            ["tier"] = "web",
            [PlacementHints.Zone] = "az1",
            [PlacementHints.Aggregate] = "gpu-hosts",
            [PlacementHints.Hypervisor] = "qemu",
            [PlacementHints.RequireTraits] = "SSD, AVX2",
            [PlacementHints.ForbidTraits] = "GPU",
            [PlacementHints.ServerGroup] = group.ToString(),
        };

        Assert.True(PlacementHints.TryParse(labels, out var constraints, out var error));

        Assert.Null(error);
        Assert.Equal("az1", constraints.AvailabilityZone);
        Assert.Equal("gpu-hosts", constraints.Aggregate);
        Assert.Equal("qemu", constraints.Hypervisor);
        Assert.Equal(["SSD", "AVX2"], constraints.RequiredTraits);
        Assert.Equal(["GPU"], constraints.ForbiddenTraits);
        Assert.Equal(group, constraints.ServerGroupId);
    }

    [Theory]
    [InlineData("placement.cloud/colour", "x", "is not a placement hint")]
    [InlineData("placement.cloud/zone", "AZ 1", "must be a name")]
    [InlineData("placement.cloud/require-traits", "ssd", "names trait 'ssd'")]
    [InlineData("placement.cloud/server-group", "not-a-guid", "must be a server group's id")]
    public void A_bad_hint_is_refused_with_the_label_named(string key, string value, string expected)
    {
        Assert.False(PlacementHints.TryParse(new Dictionary<string, string> { [key] = value }, out var constraints, out var error));

        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.Same(PlacementConstraints.None, constraints);
    }

    [Fact]
    public void A_trait_both_required_and_forbidden_is_refused()
    {
        var labels = new Dictionary<string, string> { [PlacementHints.RequireTraits] = "SSD", [PlacementHints.ForbidTraits] = "SSD" };

        Assert.False(PlacementHints.TryParse(labels, out _, out var error));
        Assert.Equal("Trait SSD is both required and forbidden.", error);
    }
}
