using Cloud.Controller.Scheduling;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Tests;

/// <summary>The scheduler's settings are checked on start, with messages that name the setting; no I/O.</summary>
public sealed class SchedulerOptionsTests
{
    private static SchedulerOptions Resolve(Dictionary<string, string?> settings)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        services.AddScheduling();
        using var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<SchedulerOptions>>().Value;
    }

    [Fact]
    public void Weights_and_limits_bind_from_configuration()
    {
        var options = Resolve(new() { ["Scheduler:Weights:fragmentation"] = "2.5", ["Scheduler:MaxFeasibleNodes"] = "200" });

        Assert.Equal(2.5, options.Weights["fragmentation"]);
        Assert.Equal(200, options.MaxFeasibleNodes);
    }

    [Theory]
    [InlineData("Scheduler:Weights:colour", "1", "Scheduler:Weights names 'colour', which is not a weigher; the weighers are fragmentation, resources, server-group.")]
    [InlineData("Scheduler:MaxFeasibleNodes", "-1", "Scheduler:MaxFeasibleNodes must be 0 (weigh every node) or more, not -1.")]
    [InlineData("Scheduler:MaxBatchSize", "0", "Scheduler:MaxBatchSize must be between 1 and 10000, not 0.")]
    [InlineData("Scheduler:GroupCommitMaxSize", "2000", "Scheduler:GroupCommitMaxSize must be between 0 (off) and Scheduler:MaxBatchSize (1000), not 2000.")]
    [InlineData("Scheduler:ClaimLoops", "0", "Scheduler:ClaimLoops must be between 1 and 16, not 0.")]
    [InlineData("Scheduler:FullReloadInterval", "00:00:01", "Scheduler:FullReloadInterval must be at least Scheduler:RefreshInterval (00:00:02), not 00:00:01.")]
    public void A_bad_setting_is_refused_naming_it(string key, string value, string expected)
    {
        var error = Assert.Throws<OptionsValidationException>(() => Resolve(new() { [key] = value }));

        Assert.Contains(expected, error.Failures);
    }
}
