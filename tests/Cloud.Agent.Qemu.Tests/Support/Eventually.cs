namespace Cloud.Agent.Qemu.Tests.Support;

/// <summary>Polls a condition until it holds or a deadline passes; never a fixed sleep.</summary>
internal static class Eventually
{
    public static async Task<T> GetAsync<T>(Func<Task<T>> probe, Func<T, bool> done, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var value = await probe();
            if (done(value))
            {
                return value;
            }
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds} s waiting for {what}; last value: {value}");
            }
            await Task.Delay(50);
        }
    }

    public static Task TrueAsync(Func<bool> condition, TimeSpan timeout, string what)
        => GetAsync(() => Task.FromResult(condition()), v => v, timeout, what);
}
