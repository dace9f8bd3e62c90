using System.Net;
using Npgsql;
using NpgsqlTypes;

namespace Cloud.Controller.Data;

/// <summary>
/// The audit trail's hot statements, on plain Npgsql: appending a batch of events and deleting
/// old ones. Reads go through EF (<see cref="LedgerDbContext.AuditEvents"/>).
/// </summary>
internal sealed class AuditEventStore(NpgsqlDataSource dataSource)
{
    /// <summary>
    /// One statement for the whole batch, its rows passed as arrays: the text never changes, so it
    /// is prepared once per connection, and a batch of one costs one round trip like a batch of 500.
    /// </summary>
    private const string InsertSql = """
        INSERT INTO audit_events (id, time, actor, actor_name, role, tenant_id, action, target_id, source_address, status, grpc_status, trace_id)
        SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::inet[], $10::integer[], $11::integer[], $12::text[])
        ON CONFLICT (id) DO NOTHING
        """;

    /// <summary>
    /// Deletes at most <c>$2</c> of the events older than <c>$1</c>. SKIP LOCKED: replicas purging at
    /// the same time take different rows instead of waiting on each other.
    /// </summary>
    private const string PurgeSql = """
        DELETE FROM audit_events WHERE id IN (
            SELECT id FROM audit_events WHERE time < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
        """;

    /// <summary>
    /// Appends <paramref name="events"/> in one statement. Safe to run again after a failure whose
    /// outcome is unknown: an event already stored (same id) is skipped, never doubled.
    /// </summary>
    public async Task AppendAsync(IReadOnlyList<AuditEventEntity> events, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0)
        {
            return;
        }
        await using var command = dataSource.CreateCommand(InsertSql);
        command.Parameters.Add(Array(events, e => e.Id, NpgsqlDbType.Uuid));
        command.Parameters.Add(Array(events, e => e.Time, NpgsqlDbType.TimestampTz));
        command.Parameters.Add(Array(events, e => e.Actor, NpgsqlDbType.Text));
        command.Parameters.Add(Array(events, e => e.ActorName, NpgsqlDbType.Text));
        command.Parameters.Add(Array(events, e => e.Role, NpgsqlDbType.Text));
        command.Parameters.Add(Array(events, e => e.TenantId, NpgsqlDbType.Text));
        command.Parameters.Add(Array(events, e => e.Action, NpgsqlDbType.Text));
        command.Parameters.Add(Array(events, e => e.TargetId, NpgsqlDbType.Text));
        command.Parameters.Add(Array<IPAddress?>(events, e => e.SourceAddress, NpgsqlDbType.Inet));
        command.Parameters.Add(Array(events, e => e.Status, NpgsqlDbType.Integer));
        command.Parameters.Add(Array(events, e => e.GrpcStatus, NpgsqlDbType.Integer));
        command.Parameters.Add(Array(events, e => e.TraceId, NpgsqlDbType.Text));
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Deletes up to <paramref name="limit"/> events older than <paramref name="cutoff"/>; returns how many.</summary>
    public async Task<int> PurgeOlderThanAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await using var command = dataSource.CreateCommand(PurgeSql);
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = cutoff });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static NpgsqlParameter Array<T>(IReadOnlyList<AuditEventEntity> events, Func<AuditEventEntity, T> column, NpgsqlDbType type)
    {
        var values = new T[events.Count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = column(events[i]);
        }
        return new NpgsqlParameter { Value = values, NpgsqlDbType = NpgsqlDbType.Array | type };
    }
}
