using System.Globalization;
using Npgsql;

namespace Cloud.Scheduler.Benchmarks;

/// <summary>
/// PostgreSQL's side of <c>--profile</c>: the statements that took the server's time, nested
/// ones included (the statements of <c>ledger_claim</c> and of its triggers), from
/// <c>pg_stat_statements</c>. <see cref="SpanProfile"/> sees a round trip whole; this splits it.
/// </summary>
internal static class StatementProfile
{
    private const int Shown = 12;

    /// <summary>The cluster's settings that make the statistics: loaded at start, every nesting level.</summary>
    public static IReadOnlyList<string> ServerSettings { get; } =
    [
        "shared_preload_libraries = 'pg_stat_statements'",
        "pg_stat_statements.track = all",
        "pg_stat_statements.track_planning = on",
    ];

    public static async Task EnableAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
        await command.ExecuteNonQueryAsync(cancellationToken);
        await ResetAsync(dataSource, cancellationToken);
    }

    /// <summary>
    /// Prints the statements that took the most time since the last report, per placed VM, with
    /// their calls and the start of their text, then starts over.
    /// </summary>
    public static async Task ReportAsync(NpgsqlDataSource dataSource, string prefix, long vms, CancellationToken cancellationToken)
    {
        await using (var command = dataSource.CreateCommand("""
            SELECT s.total_exec_time, s.total_plan_time, s.calls, regexp_replace(s.query, '\s+', ' ', 'g')
              FROM pg_stat_statements AS s
             WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY s.total_exec_time + s.total_plan_time DESC
             LIMIT $1
            """))
        {
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = Shown });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            for (var rank = 1; await reader.ReadAsync(cancellationToken); rank++)
            {
                var text = reader.GetString(3);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{prefix}_statement_{rank}: {reader.GetDouble(0) / Math.Max(1, vms):0.####} ms/VM ({reader.GetInt64(2)} calls, planning {reader.GetDouble(1) / Math.Max(1, vms):0.####} ms/VM) {text[..Math.Min(text.Length, 110)]}"));
            }
        }
        await ResetAsync(dataSource, cancellationToken);
    }

    private static async Task ResetAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT pg_stat_statements_reset()");
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
