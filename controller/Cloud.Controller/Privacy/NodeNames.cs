using System.Text.RegularExpressions;
using Cloud.Controller.Data;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Privacy;

/// <summary>
/// Every node's name and agent address, kept for at most <see cref="MaxAge"/>, so that texts a
/// tenant reads (a VM's error, an operation's error message, a refusal) can be cleared of them:
/// those texts come from many places (agents' errors, the scheduler's reasons) and some were
/// stored before anyone knew who would read them, so they are cleared where they leave.
/// </summary>
internal sealed class NodeNames(IDbContextFactory<LedgerDbContext> contexts, TimeProvider time)
{
    /// <summary>How old the list may be: a node registered within this time may still be named once.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(1);

    private readonly SemaphoreSlim _loading = new(1, 1);
    private volatile Loaded? _current;

    public async ValueTask<NodeTextScrubber> ScrubberAsync(CancellationToken cancellationToken)
    {
        if (_current is { } current && time.GetUtcNow() - current.LoadedAt < MaxAge)
        {
            return current.Scrubber;
        }
        await _loading.WaitAsync(cancellationToken);
        try
        {
            if (_current is { } again && time.GetUtcNow() - again.LoadedAt < MaxAge)
            {
                return again.Scrubber;
            }
            var loadedAt = time.GetUtcNow();
            await using var db = await contexts.CreateDbContextAsync(cancellationToken);
            var nodes = await db.Nodes.AsNoTracking().Select(n => new { n.Name, n.Address }).ToListAsync(cancellationToken);
            var scrubber = new NodeTextScrubber(nodes.Select(n => (n.Name, n.Address)));
            _current = new Loaded(scrubber, loadedAt);
            return scrubber;
        }
        finally
        {
            _loading.Release();
        }
    }

    /// <summary>A reference, so that readers outside the lock never see half of a change.</summary>
    private sealed record Loaded(NodeTextScrubber Scrubber, DateTimeOffset LoadedAt);
}

/// <summary>
/// Replaces, in a text, each node's name and the host of its agent's address with what the
/// reader may see instead (a tenant's host id). Words are compared whole, so that a node
/// "node-1" does not touch "node-10"; a name inside a dotted or underscored word
/// ("node-1.example", "vm_node-1") is replaced too.
/// </summary>
internal sealed partial class NodeTextScrubber
{
    private readonly Dictionary<string, string> _nodeOf = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _nodeOfName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _nodeOfIpv6 = new(StringComparer.OrdinalIgnoreCase);

    public NodeTextScrubber(IEnumerable<(string Name, string Address)> nodes)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        foreach (var (name, address) in nodes)
        {
            _nodeOf[name] = name;
            _nodeOfName[name] = name;
            if (Uri.TryCreate(address, UriKind.Absolute, out var uri) && uri.Host.Length > 0)
            {
                if (uri.HostNameType == UriHostNameType.IPv6)
                {
                    _nodeOfIpv6.TryAdd(uri.Host, name);
                    _nodeOfIpv6.TryAdd(uri.Host.Trim('[', ']'), name);
                }
                else
                {
                    _nodeOf.TryAdd(uri.Host, name);
                }
            }
        }
    }

    /// <summary>
    /// An IPv6 address (bracketed or not), or a word: letters, digits and '-', '.', '_' inside
    /// (an IPv4 address, a DNS name, a label). One pass, so that a replacement is never read again.
    /// </summary>
    [GeneratedRegex(@"(?<v6>\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f]*::?[0-9A-Fa-f:.]*[0-9A-Fa-f])|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")]
    private static partial Regex Word();

    [GeneratedRegex("[A-Za-z0-9-]+")]
    private static partial Regex Label();

    /// <summary>The text with every node named replaced by <paramref name="replacement"/>(node name).</summary>
    public string Scrub(string text, Func<string, string> replacement)
    {
        ArgumentNullException.ThrowIfNull(replacement);
        if (string.IsNullOrEmpty(text) || _nodeOf.Count == 0)
        {
            return text;
        }
        return Word().Replace(text, word =>
        {
            if (word.Groups["v6"].Success)
            {
                // Not an address of a node, but maybe "c0ffee:7070", a node and a port.
                return _nodeOfIpv6.TryGetValue(word.Value, out var host) ? replacement(host)
                    : Label().Replace(word.Value, label => _nodeOf.TryGetValue(label.Value, out var named) ? replacement(named) : label.Value);
            }
            if (_nodeOf.TryGetValue(word.Value, out var node))
            {
                return replacement(node);
            }
            return word.Value.AsSpan().IndexOfAny('.', '_') < 0
                ? word.Value
                : Label().Replace(word.Value, label => _nodeOfName.TryGetValue(label.Value, out var named) ? replacement(named) : label.Value);
        });
    }
}
