#!/usr/bin/env bash
# What this host's PostgreSQL alone gives at the latency benchmark's rate: pgbench, PostgreSQL's
# own C client, against a throwaway durable cluster (fsync and synchronous_commit on), 500
# transactions a second on a fixed schedule for SECONDS (default 20) each:
#   postgres_floor_update_*  one UPDATE of one row per transaction, one round trip
#   postgres_floor_tpcb_*    pgbench's TPC-B-like transaction: three UPDATEs, a SELECT and an
#                            INSERT, seven round trips
# Latency counts from each transaction's due time, as the latency benchmark counts, so a late
# start counts. Nothing of the controller runs: what is left in the p99 is the host's.
# Usage: deploy/dev/postgres-floor.sh [SECONDS]
set -euo pipefail

SECONDS_EACH=${1:-20}
RATE=500
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
DIR=$(mktemp -d /tmp/cloud-postgres-floor.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chown postgres "$DIR"

as_postgres() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

stop() {
  as_postgres "'$BIN/pg_ctl' -D '$DIR/data' -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap stop EXIT

as_postgres "'$BIN/initdb' -D '$DIR/data' -A trust" >/dev/null
as_postgres "'$BIN/pg_ctl' -D '$DIR/data' -l '$DIR/log' -w -o \"-p $PORT -k '$DIR' -c listen_addresses=127.0.0.1\" start" >/dev/null
as_postgres "'$BIN/pgbench' -h 127.0.0.1 -p $PORT -i -s 10 postgres" >/dev/null 2>&1
# The tables' pages on disk before the loop, as a cluster that has run a while has them.
as_postgres "'$BIN/psql' -h 127.0.0.1 -p $PORT -qc CHECKPOINT postgres" >/dev/null
cat >"$DIR/update.sql" <<'SQL'
\set aid random(1, 1000000)
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
SQL
chown postgres "$DIR/update.sql"

# CPU ticks of the postmaster, every process it runs, and those it has reaped.
postgres_ticks() {
  local postmaster total
  postmaster=$(head -1 "$DIR/data/postmaster.pid")
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat")
  for child in $(pgrep -P "$postmaster"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

run() {
  local name=$1 script=$2 before after
  before=$(postgres_ticks)
  # Four connections, so that one slow transaction does not hold up the ones due after it (the
  # controller's claim loop lets them through together); -M prepared, as the controller prepares.
  as_postgres "cd '$DIR' && '$BIN/pgbench' -h 127.0.0.1 -p $PORT $script -R $RATE -T $SECONDS_EACH -c 4 -j 1 -M prepared --log --log-prefix='$DIR/$name' postgres" >/dev/null 2>&1
  sleep 1
  after=$(postgres_ticks)
  # A log line: client, transaction, latency (us), script, epoch s, epoch us, schedule lag (us).
  cat "$DIR/$name".* | awk '{print $3 + $7}' | sort -n | awk -v name="$name" -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    { latency[NR] = $1 }
    END {
      printf "postgres_floor_%s_transactions: %d transactions\n", name, NR
      printf "postgres_floor_%s_p50: %.3f ms\n", name, latency[int(NR * 0.50)] / 1000
      printf "postgres_floor_%s_p99: %.3f ms\n", name, latency[int(NR * 0.99)] / 1000
      printf "postgres_floor_%s_p999: %.3f ms\n", name, latency[int(NR * 0.999)] / 1000
      printf "postgres_floor_%s_postgres_cpu_per_transaction: %.3f ms\n", name, ticks * 1000 / hz / NR
    }'
}

echo "postgres_floor_rate: $RATE transactions/s"
run update "-f '$DIR/update.sql'"
run tpcb ""
