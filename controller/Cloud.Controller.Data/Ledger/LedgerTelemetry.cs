using System.Diagnostics;
using System.Diagnostics.Metrics;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Cloud.Controller.Data;

/// <summary>The ledger's spans and metrics, both named "Cloud.Ledger".</summary>
internal static class LedgerTelemetry
{
    public const string Name = "Cloud.Ledger";

    /// <summary>Npgsql's own source and meter: the SQL under the ledger's spans.</summary>
    public const string NpgsqlName = "Npgsql";

    public static readonly ActivitySource Source = new(Name);

    private static readonly Meter Meter = new(Name);

    /// <summary>
    /// Claims accepted: committed, or, inside a caller's transaction, handed back to the
    /// caller to commit.
    /// </summary>
    public static readonly Counter<long> ClaimsCommitted = Meter.CreateCounter<long>(
        "cloud.ledger.claims.committed", unit: "{claim}", description: "Claims accepted by the ledger.");

    /// <summary>Claim batches refused, tagged with the first reason.</summary>
    public static readonly Counter<long> ClaimConflicts = Meter.CreateCounter<long>(
        "cloud.ledger.claims.conflicts", unit: "{batch}", description: "Claim batches refused for a stale generation, lack of capacity or contention.");

    public static readonly Histogram<double> ClaimDuration = Meter.CreateHistogram<double>(
        "cloud.ledger.claim.duration", unit: "s", description: "Time to claim a batch, until commit when the ledger owns the transaction.");

    /// <summary>Adds the ledger's spans and Npgsql's to a tracer provider.</summary>
    public static TracerProviderBuilder AddLedgerInstrumentation(this TracerProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddSource(Name, NpgsqlName);
    }

    /// <summary>Adds the ledger's metrics and Npgsql's to a meter provider.</summary>
    public static MeterProviderBuilder AddLedgerInstrumentation(this MeterProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddMeter(Name, NpgsqlName);
    }
}
