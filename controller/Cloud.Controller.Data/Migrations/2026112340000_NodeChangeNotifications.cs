using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// PostgreSQL tells every listening controller replica when a node appears, goes, changes state
/// or schedulable flag, or joins or leaves an aggregate: a notification on the channel
/// <c>cloud_nodes_changed</c> (<see cref="LedgerSql.NodesChangedChannel"/>), sent as the change
/// commits. Replicas then check their view at once instead of at their next periodic check
/// (docs/design/006-scheduling.md, "Keeping the view current"). Claims and releases, which only
/// bump generations, notify nobody: the claim's own check covers a view that is behind on
/// capacity, and they are the hot path. A change of a node's aggregates also bumps its
/// generation, whoever makes it. Written by hand (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112340000_NodeChangeNotifications")]
internal sealed class NodeChangeNotifications : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
        => migrationBuilder.Sql("""
            CREATE FUNCTION notify_nodes_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                -- One channel, no payload: a replica checks every node anyway, and PostgreSQL
                -- sends identical notifications of one transaction once.
                PERFORM pg_notify('cloud_nodes_changed', '');
                RETURN NULL;
            END $$;

            -- UPDATE OF fires when the columns are set, changed or not (a heartbeat sets state):
            -- the WHEN clause keeps the notification to real changes.
            CREATE TRIGGER nodes_state_changed AFTER UPDATE OF state, schedulable ON nodes
                FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.schedulable IS DISTINCT FROM NEW.schedulable)
                EXECUTE FUNCTION notify_nodes_changed();
            CREATE TRIGGER nodes_added_or_removed AFTER INSERT OR DELETE ON nodes
                FOR EACH STATEMENT EXECUTE FUNCTION notify_nodes_changed();
            CREATE TRIGGER aggregate_members_changed AFTER INSERT OR DELETE ON aggregate_nodes
                FOR EACH STATEMENT EXECUTE FUNCTION notify_nodes_changed();

            -- A node's aggregates (and so perhaps its zone) are part of what a view holds of it:
            -- whoever changes them bumps its generation, so that the replicas' checks reload it.
            CREATE FUNCTION bump_aggregate_member() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE nodes SET generation = generation + 1
                 WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.node_id ELSE NEW.node_id END;
                RETURN NULL;
            END $$;
            CREATE TRIGGER aggregate_member_bumped AFTER INSERT OR DELETE ON aggregate_nodes
                FOR EACH ROW EXECUTE FUNCTION bump_aggregate_member();
            """);

    protected override void Down(MigrationBuilder migrationBuilder)
        => migrationBuilder.Sql("""
            DROP TRIGGER aggregate_member_bumped ON aggregate_nodes;
            DROP FUNCTION bump_aggregate_member();
            DROP TRIGGER aggregate_members_changed ON aggregate_nodes;
            DROP TRIGGER nodes_added_or_removed ON nodes;
            DROP TRIGGER nodes_state_changed ON nodes;
            DROP FUNCTION notify_nodes_changed();
            """);
}
