using System.Text.RegularExpressions;

namespace Cloud.Agent.Qemu.Tests.Support;

/// <summary>One line the test guest printed.</summary>
internal sealed record GuestTick(long Tick, int Cpus, long MemTotalKb);

/// <summary>Reads what the test guest prints on its serial console (the VM's serial.log).</summary>
internal static partial class SerialConsole
{
    public static IReadOnlyList<GuestTick> Ticks(string serialLog, long fromOffset = 0)
    {
        if (!File.Exists(serialLog))
        {
            return [];
        }
        string text;
        using (var stream = new FileStream(serialLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            stream.Seek(Math.Min(fromOffset, stream.Length), SeekOrigin.Begin);
            using var reader = new StreamReader(stream);
            text = reader.ReadToEnd();
        }
        return [.. TickLine().Matches(text).Select(m => new GuestTick(long.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value), long.Parse(m.Groups[3].Value)))];
    }

    public static long Length(string serialLog) => File.Exists(serialLog) ? new FileInfo(serialLog).Length : 0;

    /// <summary>Polls the log until a tick matches, or fails after the deadline with what was seen.</summary>
    public static async Task<GuestTick> WaitForAsync(string serialLog, Func<GuestTick, bool> predicate, TimeSpan timeout, long fromOffset = 0)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var ticks = Ticks(serialLog, fromOffset);
            var match = ticks.FirstOrDefault(predicate);
            if (match is not null)
            {
                return match;
            }
            if (DateTime.UtcNow > deadline)
            {
                var last = ticks.Count > 0 ? ticks[^1].ToString() : "nothing";
                Assert.Fail($"The guest did not print the expected tick within {timeout.TotalSeconds} s; last seen: {last}");
            }
            await Task.Delay(100);
        }
    }

    [GeneratedRegex(@"tick=(\d+) cpus=(\d+) memtotal_kb=(\d+)")]
    private static partial Regex TickLine();
}
